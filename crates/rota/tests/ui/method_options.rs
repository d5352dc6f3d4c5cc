#[rota::contract]
pub trait Billing {
    #[rota(retries = 3)]
    async fn unknown(&self) -> u32;
    #[rota(timeout_ms = "5s")]
    async fn not_a_number(&self) -> u32;
    #[rota(timeout_ms)]
    async fn no_value(&self) -> u32;
    #[rota(timeout_ms = 0)]
    async fn zero(&self) -> u32;
    #[rota(oneway, oneway)]
    async fn twice(&self);
    #[rota(oneway)]
    async fn oneway_with_result(&self) -> u32;
    #[rota(oneway, timeout_ms = 100)]
    async fn oneway_with_timeout(&self);
    #[rota]
    async fn bare(&self) -> u32;
    // A oneway method may spell out `()`.
    #[rota(oneway)]
    async fn fine(&self) -> ();
}

#[rota::contract]
#[rota(oneway)]
pub trait OnTheTrait {
    async fn ping(&self) -> u32;
}

fn main() {}
