#[rota::contract]
pub trait Billing {
    async fn pair(&self, (a, b): (u8, u8)) -> u8;
    async fn ignored(&self, _: u8) -> u8;
    async fn by_ref(&self, ref name: String) -> u8;
    // `mut` is fine: it is dropped from the contract.
    async fn fine(&self, mut name: String) -> u8;
}

fn main() {}
