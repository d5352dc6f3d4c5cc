#[rota::contract]
pub trait Billing {
    async fn by_type<T>(&self, value: T) -> u32;
    async fn by_const<const N: usize>(&self) -> u32;
    async fn by_lifetime<'a>(&self, name: String) -> u32;
    async fn with_where(&self, value: u32) -> u32 where u32: Copy;
}

fn main() {}
