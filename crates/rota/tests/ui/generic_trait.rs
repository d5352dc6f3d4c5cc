#[rota::contract]
pub trait Store<T> {
    async fn get(&self, key: String) -> u32;
}

#[rota::contract]
pub trait Audited: Clone {
    async fn get(&self, key: String) -> u32;
}

#[rota::contract]
pub trait Bounded
where
    u32: Copy,
{
    async fn get(&self, key: String) -> u32;
}

#[rota::contract]
pub unsafe trait Risky {
    async fn get(&self, key: String) -> u32;
}

fn main() {}
