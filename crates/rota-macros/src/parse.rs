//! Our own syntax: what `#[rota::contract]` is given, and the `#[rota(...)]`
//! options of a method. Rules about what a contract may contain live in
//! `validate`.

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, Item, ItemTrait, LitInt, Token};

/// The arguments of `#[rota::contract(...)]`: none are accepted yet.
pub(crate) struct ContractArgs;

impl Parse for ContractArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() {
            return Ok(ContractArgs);
        }
        let args: TokenStream = input.parse()?;
        Err(syn::Error::new_spanned(
            args,
            "`#[rota::contract]` takes no arguments; the contract is named after the trait",
        ))
    }
}

/// The item `#[rota::contract]` is put on, which must be a trait.
pub(crate) struct ContractInput(pub(crate) ItemTrait);

impl Parse for ContractInput {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        match input.parse::<Item>()? {
            Item::Trait(item) => Ok(ContractInput(item)),
            _ => Err(syn::Error::new(
                Span::call_site(),
                "`#[rota::contract]` goes on a trait of `async fn` methods, \
                 like `pub trait Billing { async fn ping(&self) -> String; }`",
            )),
        }
    }
}

/// Whether an attribute is one of ours: `#[rota(...)]`.
pub(crate) fn is_rota_attr(attr: &Attribute) -> bool {
    attr.path().is_ident("rota")
}

/// One option inside `#[rota(...)]`.
pub(crate) enum MethodOption {
    /// `oneway`: the caller does not wait for the method.
    Oneway(Ident),
    /// `timeout_ms = N`: the method's own call timeout.
    TimeoutMs {
        /// The `timeout_ms` keyword, for errors about the option.
        key: Ident,
        /// The timeout in milliseconds, at least 1.
        millis: u64,
    },
}

impl MethodOption {
    /// The option's keyword.
    pub(crate) fn key(&self) -> &Ident {
        match self {
            MethodOption::Oneway(key) | MethodOption::TimeoutMs { key, .. } => key,
        }
    }
}

/// The options of one `#[rota(...)]` attribute, separated by commas.
pub(crate) struct MethodOptions(pub(crate) Punctuated<MethodOption, Token![,]>);

impl Parse for MethodOptions {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        Punctuated::parse_terminated(input).map(MethodOptions)
    }
}

/// What to write instead of an unknown option.
const EXPECTED_OPTIONS: &str = "expected `oneway` or `timeout_ms = <milliseconds>`";

impl Parse for MethodOption {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key: Ident = input
            .parse()
            .map_err(|e| syn::Error::new(e.span(), EXPECTED_OPTIONS))?;
        if key == "oneway" {
            if input.peek(Token![=]) {
                return Err(syn::Error::new(
                    key.span(),
                    "`oneway` takes no value: write `#[rota(oneway)]`",
                ));
            }
            Ok(MethodOption::Oneway(key))
        } else if key == "timeout_ms" {
            let millis = parse_millis(&key, input)?;
            Ok(MethodOption::TimeoutMs { key, millis })
        } else {
            Err(syn::Error::new(
                key.span(),
                format!("unknown rota option `{key}`; {EXPECTED_OPTIONS}"),
            ))
        }
    }
}

/// Parses the `= N` after `timeout_ms`.
fn parse_millis(key: &Ident, input: ParseStream<'_>) -> syn::Result<u64> {
    const USAGE: &str =
        "`timeout_ms` takes a whole number of milliseconds, like `timeout_ms = 5000`";
    if !input.peek(Token![=]) {
        return Err(syn::Error::new(key.span(), USAGE));
    }
    input.parse::<Token![=]>()?;
    if !input.peek(LitInt) {
        // Point at whatever was written instead of the number.
        let span = if input.is_empty() {
            key.span()
        } else {
            input.span()
        };
        return Err(syn::Error::new(span, USAGE));
    }
    let lit: LitInt = input.parse()?;
    let millis = lit
        .base10_parse::<u64>()
        .map_err(|_| syn::Error::new(lit.span(), USAGE))?;
    if millis == 0 {
        return Err(syn::Error::new(
            lit.span(),
            "`timeout_ms` must be at least 1; leave it out to use the caller's timeout",
        ));
    }
    Ok(millis)
}
