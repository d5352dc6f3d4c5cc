#[rota::contract]
pub trait Billing {
    async fn argument(&self, name: impl Into<String>) -> u32;
    async fn result(&self) -> impl std::fmt::Display;
}

fn main() {}
