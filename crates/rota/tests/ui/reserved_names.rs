#[rota::contract]
pub trait Billing {
    async fn __hidden(&self) -> u32;
    async fn new(&self) -> u32;
    async fn with_timeout(&self, millis: u64) -> u32;
}

fn main() {}
