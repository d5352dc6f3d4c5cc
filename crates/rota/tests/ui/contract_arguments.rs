#[rota::contract(name = "Billing")]
pub trait Billing {
    async fn ping(&self) -> String;
}

fn main() {}
