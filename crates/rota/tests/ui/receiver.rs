#[rota::contract]
pub trait Billing {
    async fn by_value(self) -> u32;
    async fn by_mut(&mut self) -> u32;
    async fn boxed(self: Box<Self>) -> u32;
    async fn no_receiver(value: u32) -> u32;
    async fn nothing() -> u32;
}

fn main() {}
