#[rota::contract]
pub trait Billing {
    fn ping(&self) -> String;
    async fn fine(&self) -> String;
}

fn main() {}
