#[rota::contract]
pub struct Billing {
    cents: u64,
}

fn main() {}
