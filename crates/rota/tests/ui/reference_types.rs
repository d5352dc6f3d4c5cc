#[rota::contract]
pub trait Billing {
    async fn name(&self, name: &str) -> u32;
    async fn bytes(&self, data: &[u8]) -> u32;
    async fn nested(&self, names: Vec<&'static str>) -> u32;
    async fn borrowed(&self) -> &'static str;
    async fn this(&self, other: Self) -> u32;
}

fn main() {}
