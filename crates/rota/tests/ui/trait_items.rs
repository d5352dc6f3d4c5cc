macro_rules! some_macro {
    () => {};
}

#[rota::contract]
pub trait Billing {
    type Invoice;
    const CURRENCY: &'static str;
    some_macro!();
    async fn ping(&self) -> String;
}

fn main() {}
