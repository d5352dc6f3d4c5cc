//! The rules of a contract. [`contract`] checks a trait against all of them,
//! collecting one spanned error per problem, and builds the [`Contract`]
//! model only when there is none.

use std::collections::HashSet;

use proc_macro2::TokenStream;
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, GenericArgument, ItemTrait, Meta, Pat, PathArguments, ReceiverKind,
    ReturnType, Safety, TraitItem, TraitItemFn, Type,
};

use crate::model::{Arg, Contract, Delivery, Method, Output};
use crate::parse::{ContractArgs, MethodOption, MethodOptions, is_rota_attr};

/// Names the generated client defines itself, which a method cannot take.
const CLIENT_METHODS: &[&str] = &[
    "new",
    "with_timeout",
    "with_header",
    "with_options",
    "service_client",
];

/// Checks `#[rota::contract(args)]` on `item` and builds the model.
pub(crate) fn contract(args: TokenStream, item: &ItemTrait) -> syn::Result<Contract> {
    let mut errors = Errors::default();
    if let Err(error) = syn::parse2::<ContractArgs>(args) {
        errors.push(error);
    }
    check_trait_header(item, &mut errors);

    let mut methods = Vec::new();
    let mut names = HashSet::new();
    for trait_item in &item.items {
        let TraitItem::Fn(function) = trait_item else {
            errors.push(syn::Error::new_spanned(
                trait_item,
                "a contract holds only `async fn` methods; \
                 move associated types, constants and macros out of the trait",
            ));
            continue;
        };
        let name = function.sig.ident.to_string();
        if !names.insert(name.clone()) {
            errors.push(syn::Error::new_spanned(
                &function.sig.ident,
                format!("the contract has two methods named `{name}`"),
            ));
        }
        if let Some(method) = method(function, &mut errors) {
            methods.push(method);
        }
    }

    errors.finish()?;
    Ok(Contract {
        attrs: item.attrs.clone(),
        vis: item.vis.clone(),
        ident: item.ident.clone(),
        methods,
    })
}

/// Errors collected so far; they are reported together.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn count(&self) -> usize {
        self.0.as_ref().map_or(0, |e| e.into_iter().count())
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// The trait itself: no generics, supertraits, `unsafe` or options.
fn check_trait_header(item: &ItemTrait, errors: &mut Errors) {
    if let Some(unsafety) = &item.unsafety {
        errors.push(syn::Error::new_spanned(
            unsafety,
            "a contract cannot be an `unsafe` trait",
        ));
    }
    if let Some(auto) = &item.modifiers.auto_token {
        errors.push(syn::Error::new_spanned(
            auto,
            "a contract cannot be an `auto` trait",
        ));
    }
    if !item.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &item.generics,
            "contracts cannot be generic: the client and server are generated for concrete types",
        ));
    }
    if let Some(where_clause) = &item.generics.where_clause {
        errors.push(syn::Error::new_spanned(
            where_clause,
            "contracts cannot be generic, so they cannot have a `where` clause",
        ));
    }
    if item.colon_token.is_some() {
        let bounds = &item.supertraits;
        errors.push(syn::Error::new_spanned(
            bounds,
            "contracts cannot have supertraits; rota adds `Send + Sync + 'static` itself",
        ));
    }
    for attr in item.attrs.iter().filter(|a| is_rota_attr(a)) {
        errors.push(syn::Error::new_spanned(
            attr,
            "`#[rota(...)]` options go on the methods of a contract, not on the trait",
        ));
    }
}

/// One method; `None` if it broke a rule (the errors are in `errors`).
fn method(function: &TraitItemFn, errors: &mut Errors) -> Option<Method> {
    let before = errors.count();
    let sig = &function.sig;

    if sig.asyncness.is_none() {
        errors.push(syn::Error::new_spanned(
            sig.fn_token,
            "rota contract methods must be `async fn`",
        ));
    }
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new_spanned(
            constness,
            "contract methods cannot be `const fn`",
        ));
    }
    match &sig.safety {
        Safety::Default => {}
        Safety::Unsafe(token) => errors.push(syn::Error::new_spanned(
            token,
            "contract methods cannot be `unsafe fn`: they are called from other processes",
        )),
        Safety::Safe(token) => errors.push(syn::Error::new_spanned(
            token,
            "contract methods cannot be marked `safe`",
        )),
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "contract methods cannot be `extern`; rota chooses how they are called",
        ));
    }
    if let Some(defaultness) = &function.modifiers.defaultness {
        errors.push(syn::Error::new_spanned(
            defaultness,
            "contract methods cannot be `default fn`",
        ));
    }
    if !sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "contract methods cannot be generic (no type, const or lifetime parameters): \
             arguments and results are serialized, so their types must be concrete",
        ));
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        errors.push(syn::Error::new_spanned(
            where_clause,
            "contract methods cannot have a `where` clause",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "contract methods cannot be variadic",
        ));
    }
    if let Some(body) = &function.default {
        errors.push(syn::Error::new_spanned(
            body,
            "contract methods cannot have a default body: write the body in the \
             implementation of the contract, and end the method here with `;`",
        ));
    }
    let name = sig.ident.to_string();
    if name.starts_with("__") {
        errors.push(syn::Error::new_spanned(
            &sig.ident,
            "method names starting with `__` are reserved for rota",
        ));
    } else if CLIENT_METHODS.contains(&name.as_str()) {
        errors.push(syn::Error::new_spanned(
            &sig.ident,
            format!(
                "a contract method cannot be named `{name}`: the generated client has \
                 a method of that name; rename it"
            ),
        ));
    }

    let (attrs, delivery) = method_options(&function.attrs, errors);
    let args = arguments(function, errors);
    let returns = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => Some((**ty).clone()),
    };
    if let Some(ty) = &returns {
        check_type(ty, Position::Return, errors);
    }
    let output = output(returns.as_ref());
    if matches!(delivery, Delivery::Oneway)
        && !matches!(output, Output::Unit)
        && let Some(ty) = &returns
    {
        errors.push(syn::Error::new_spanned(
            ty,
            "a `#[rota(oneway)]` method returns nothing, since its caller does not wait \
             for it to run; remove the return type",
        ));
    }

    if errors.count() > before {
        return None;
    }
    Some(Method {
        attrs,
        ident: sig.ident.clone(),
        args: args?,
        returns,
        output,
        delivery,
    })
}

/// Reads the `#[rota(...)]` options of a method. Returns the other
/// attributes, to keep, and how the method is delivered.
fn method_options(attrs: &[Attribute], errors: &mut Errors) -> (Vec<Attribute>, Delivery) {
    let mut kept = Vec::new();
    let mut oneway = None;
    let mut timeout = None;
    for attr in attrs {
        if attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr") {
            errors.push(syn::Error::new_spanned(
                attr,
                "`#[cfg]` on a contract method is not supported: every method of a contract \
                 exists in every build, so client and server agree on it",
            ));
            continue;
        }
        if !is_rota_attr(attr) {
            kept.push(attr.clone());
            continue;
        }
        let Meta::List(list) = &attr.meta else {
            errors.push(syn::Error::new_spanned(
                attr,
                "write the options in parentheses: `#[rota(oneway)]` or \
                 `#[rota(timeout_ms = 5000)]`",
            ));
            continue;
        };
        let options = match list.parse_args::<MethodOptions>() {
            Ok(MethodOptions(options)) => options,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        for option in options {
            let slot = match option {
                MethodOption::Oneway(_) => &mut oneway,
                MethodOption::TimeoutMs { .. } => &mut timeout,
            };
            if slot.is_some() {
                let key = option.key();
                errors.push(syn::Error::new_spanned(
                    key,
                    format!("`{key}` is given twice"),
                ));
            } else {
                *slot = Some(option);
            }
        }
    }
    let delivery = match (oneway, timeout) {
        (Some(_), Some(timeout)) => {
            errors.push(syn::Error::new_spanned(
                timeout.key(),
                "a `#[rota(oneway)]` method has no reply to wait for, so `timeout_ms` \
                 has no meaning here",
            ));
            Delivery::Oneway
        }
        (Some(_), None) => Delivery::Oneway,
        (None, Some(MethodOption::TimeoutMs { millis, .. })) => Delivery::Call {
            timeout_ms: Some(millis),
        },
        (None, _) => Delivery::Call { timeout_ms: None },
    };
    (kept, delivery)
}

/// The arguments after `&self`; `None` if one of them is not allowed.
fn arguments(function: &TraitItemFn, errors: &mut Errors) -> Option<Vec<Arg>> {
    let sig = &function.sig;
    let before = errors.count();
    let mut inputs = sig.inputs.iter();

    const RECEIVER: &str = "contract methods take `&self`: the server shares one value \
                            among concurrent calls, so it can neither move it (`self`) \
                            nor borrow it mutably (`&mut self`)";
    match inputs.next() {
        Some(FnArg::Receiver(receiver)) => {
            let shared_ref = matches!(&receiver.kind, ReceiverKind::Reference(_, None, None))
                && receiver.mutability.is_none();
            if !shared_ref {
                errors.push(syn::Error::new_spanned(receiver, RECEIVER));
            }
        }
        first => {
            let span = first.map_or_else(|| sig.paren_token.span.join(), |arg| arg.span());
            errors.push(syn::Error::new(
                span,
                "contract methods take `&self` as their first argument",
            ));
            // Check the first argument like the others below.
            inputs = sig.inputs.iter();
        }
    }

    let mut args = Vec::new();
    for input in inputs {
        let typed = match input {
            FnArg::Typed(typed) => typed,
            FnArg::Receiver(receiver) => {
                errors.push(syn::Error::new_spanned(receiver, RECEIVER));
                continue;
            }
        };
        if let Some(attr) = typed.attrs.first() {
            errors.push(syn::Error::new_spanned(
                attr,
                "attributes on contract method arguments are not supported",
            ));
        }
        check_type(&typed.ty, Position::Argument, errors);
        match &*typed.pat {
            Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => args.push(Arg {
                ident: pat.ident.clone(),
                ty: (*typed.ty).clone(),
            }),
            pat => errors.push(syn::Error::new_spanned(
                pat,
                "contract method arguments must be plain names, like `tenant: TenantId`: \
                 each becomes a named field of the request",
            )),
        }
    }
    (errors.count() == before).then_some(args)
}

/// Where a type appears, for the wording of errors.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Position {
    Argument,
    Return,
}

/// Rejects types that cannot travel: references, `impl Trait` and `Self`.
fn check_type(ty: &Type, position: Position, errors: &mut Errors) {
    match ty {
        Type::Reference(reference) => {
            let message = match position {
                Position::Argument if is_str(&reference.elem) => {
                    "arguments must be owned types (they are serialized); use `String` instead of `&str`"
                }
                Position::Argument => {
                    "arguments must be owned types (they are serialized); take `T` instead of `&T`, \
                     `Vec<T>` instead of `&[T]`"
                }
                Position::Return => {
                    "return types must be owned types (the caller deserializes them); \
                     return `T` instead of `&T`, `String` instead of `&str`"
                }
            };
            errors.push(syn::Error::new_spanned(reference, message));
        }
        Type::ImplTrait(impl_trait) => {
            let message = match position {
                Position::Argument => {
                    "`impl Trait` arguments are not supported: arguments are serialized, \
                     so write a concrete type"
                }
                Position::Return => {
                    "`impl Trait` return types are not supported: write the concrete type \
                     (the method is already `async`)"
                }
            };
            errors.push(syn::Error::new_spanned(impl_trait, message));
        }
        Type::Path(path) => {
            if let Some(qself) = &path.qself {
                check_type(&qself.ty, position, errors);
            }
            if path.qself.is_none()
                && path
                    .path
                    .segments
                    .first()
                    .is_some_and(|s| s.ident == "Self")
            {
                errors.push(syn::Error::new_spanned(
                    path,
                    "contract types cannot mention `Self`: name the type itself",
                ));
                return;
            }
            for segment in &path.path.segments {
                if let PathArguments::AngleBracketed(generic) = &segment.arguments {
                    for arg in &generic.args {
                        match arg {
                            GenericArgument::Type(ty) => check_type(ty, position, errors),
                            GenericArgument::AssocType(assoc) => {
                                check_type(&assoc.ty, position, errors);
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        Type::Array(array) => check_type(&array.elem, position, errors),
        Type::Slice(slice) => check_type(&slice.elem, position, errors),
        Type::Group(group) => check_type(&group.elem, position, errors),
        Type::Paren(paren) => check_type(&paren.elem, position, errors),
        Type::Tuple(tuple) => {
            for elem in &tuple.elems {
                check_type(elem, position, errors);
            }
        }
        // Anything else that cannot be (de)serialized is reported by rustc,
        // at the type, through the generated serde bounds.
        _ => {}
    }
}

/// Whether a type is `str`.
fn is_str(ty: &Type) -> bool {
    matches!(ty, Type::Path(path) if path.qself.is_none() && path.path.is_ident("str"))
}

/// Reads the return type: a `Result<T, E>` (by its last path segment, with
/// two type arguments) is fallible.
fn output(returns: Option<&Type>) -> Output {
    let Some(ty) = returns else {
        return Output::Unit;
    };
    match ty {
        Type::Tuple(tuple) if tuple.elems.is_empty() => Output::Unit,
        Type::Path(path) if path.qself.is_none() => {
            let Some(last) = path.path.segments.last() else {
                return Output::Value(Box::new(ty.clone()));
            };
            if last.ident != "Result" {
                return Output::Value(Box::new(ty.clone()));
            }
            let PathArguments::AngleBracketed(generic) = &last.arguments else {
                return Output::Value(Box::new(ty.clone()));
            };
            let types: Vec<&Type> = generic
                .args
                .iter()
                .filter_map(|arg| match arg {
                    GenericArgument::Type(ty) => Some(ty),
                    _ => None,
                })
                .collect();
            match types[..] {
                [ok, err] if generic.args.len() == 2 => Output::Fallible {
                    ok: Box::new(ok.clone()),
                    err: Box::new(err.clone()),
                },
                _ => Output::Value(Box::new(ty.clone())),
            }
        }
        _ => Output::Value(Box::new(ty.clone())),
    }
}
