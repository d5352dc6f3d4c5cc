//! The `#[contract]` attribute of rota. Use it as `#[rota::contract]`; the
//! generated code names everything through `::rota`, so this crate is of no
//! use on its own.
//!
//! The macro is a pipeline of three steps, one file each:
//!
//! * `parse` — our own syntax: the (empty) arguments of `#[rota::contract]`,
//!   the trait it is put on, and the `#[rota(...)]` options of a method.
//! * `validate` — checks the trait against the rules of a contract and turns
//!   it into the `model` (a `Contract` of methods with
//!   named, owned arguments). Every problem becomes a `syn::Error` with the
//!   span of the code at fault, and all of them are reported together.
//! * `generate` — writes the `Send` trait, the hidden argument structs, the
//!   client and the server from the model, naming every dependency by an
//!   absolute path (`::core`, `::std`, `::rota`).
//!
//! When validation fails the trait is still emitted (cleaned of what would
//! make rustc repeat our errors), so that code using it does not drown the
//! real errors in "cannot find trait" ones.

mod generate;
mod model;
mod parse;
mod validate;

use proc_macro::TokenStream;
use quote::quote;

/// Turns a trait into a service contract: a `Send` trait to implement, a
/// typed client `<Trait>Client` and a server `<Trait>Server<S>`.
///
/// Every method must be an `async fn` taking `&self` and owned, serializable
/// arguments. A method returning `Result<T, E>` is fallible: its client
/// returns `Result<T, rota::CallError<E>>`, keeping `E` apart from framework
/// failures. Any other return type `T` gives `Result<T, rota::RpcError>`.
///
/// Method options:
///
/// * `#[rota(oneway)]` — the caller does not wait for the method to run (the
///   method must return nothing).
/// * `#[rota(timeout_ms = 5000)]` — the method's own call timeout, used when
///   the caller did not set one.
///
/// See the `rota` crate for a complete example.
#[proc_macro_attribute]
pub fn contract(args: TokenStream, input: TokenStream) -> TokenStream {
    expand(args.into(), input.into()).into()
}

/// The macro on `proc_macro2` tokens.
fn expand(
    args: proc_macro2::TokenStream,
    input: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let item = match syn::parse2::<parse::ContractInput>(input.clone()) {
        Ok(parse::ContractInput(item)) => item,
        Err(error) => {
            let error = error.to_compile_error();
            return quote! { #error #input };
        }
    };
    match validate::contract(args, &item) {
        Ok(contract) => generate::contract(&contract),
        Err(error) => {
            let error = error.to_compile_error();
            let fallback = generate::fallback(item);
            quote! { #error #fallback }
        }
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::expand;

    /// The expansion of a valid contract is a well-formed Rust file.
    #[test]
    fn expansion_parses() {
        let out = expand(
            quote!(),
            quote! {
                /// Bills tenants.
                pub trait Billing {
                    /// Docs are kept.
                    async fn invoice(&self, tenant: TenantId, mut month: u32) -> Result<Invoice, BillingError>;
                    #[rota(oneway)]
                    async fn audit(&self, event: AuditEvent);
                    #[rota(timeout_ms = 5000)]
                    async fn ping(&self) -> String;
                    async fn r#match(&self, r#type: String) -> ();
                }
            },
        );
        if std::env::var_os("ROTA_PRINT_EXPANSION").is_some() {
            println!("{out}");
        }
        let file: syn::File = syn::parse2(out).expect("the expansion parses");
        assert_eq!(
            file.items.len(),
            12,
            "trait, 4 argument structs, client + impl, server + 4 impls"
        );
    }

    /// An invalid contract gives errors and the trait, without our attributes.
    #[test]
    fn invalid_contract_keeps_the_trait() {
        let out = expand(
            quote!(),
            quote! {
                pub trait Billing {
                    #[rota(oneway)]
                    fn audit(&self, (a, b): (u8, u8)) -> u8;
                }
            },
        )
        .to_string();
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("trait Billing"), "{out}");
        assert!(!out.contains("# [rota"), "{out}");
    }
}
