#[rota::contract]
pub trait Billing {
    async unsafe fn risky(&self) -> u32;
    async extern "C" fn foreign(&self) -> u32;
    const async fn constant(&self) -> u32;
    async fn variadic(&self, _: ...) -> u32;
    async fn with_body(&self) -> u32 {
        1
    }
}

fn main() {}
