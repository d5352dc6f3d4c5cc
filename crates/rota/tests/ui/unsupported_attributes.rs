#[rota::contract]
pub trait Billing {
    #[cfg(unix)]
    async fn extra(&self) -> u32;
    async fn marked(&self, #[allow(unused)] value: u32) -> u32;
}

fn main() {}
