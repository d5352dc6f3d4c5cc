//! A contract as the generator sees it: validated, with nothing left to check.

use proc_macro2::Span;
use quote::format_ident;
use syn::ext::IdentExt;
use syn::{Attribute, Ident, Type, Visibility};

/// A validated contract trait.
pub(crate) struct Contract {
    /// The trait's attributes (docs included), kept on the rewritten trait.
    pub(crate) attrs: Vec<Attribute>,
    /// The trait's visibility, given to the client and the server too.
    pub(crate) vis: Visibility,
    /// The trait's name.
    pub(crate) ident: Ident,
    /// The methods, in declaration order.
    pub(crate) methods: Vec<Method>,
}

/// One `async fn` of a contract.
pub(crate) struct Method {
    /// The method's attributes except `#[rota(...)]`, kept on the trait.
    pub(crate) attrs: Vec<Attribute>,
    /// The method's name; its unraw form is the method name on the wire.
    pub(crate) ident: Ident,
    /// The arguments after `&self`.
    pub(crate) args: Vec<Arg>,
    /// The return type as written, `None` when there is none.
    pub(crate) returns: Option<Type>,
    /// What the return type means to the client and the server.
    pub(crate) output: Output,
    /// How a call of the method is delivered.
    pub(crate) delivery: Delivery,
}

/// An argument of a method: a plain name and an owned type.
pub(crate) struct Arg {
    /// The name, without `mut`: a field of the request body.
    pub(crate) ident: Ident,
    /// The type.
    pub(crate) ty: Type,
}

/// What a method returns.
pub(crate) enum Output {
    /// Nothing, or `()`.
    Unit,
    /// A value that is not a `Result<T, E>`.
    Value(Box<Type>),
    /// `Result<T, E>`: `E` is the method's own error, sent typed.
    Fallible {
        /// `T`.
        ok: Box<Type>,
        /// `E`.
        err: Box<Type>,
    },
}

/// How a method is called.
pub(crate) enum Delivery {
    /// The caller waits for the reply, for at most `timeout_ms` milliseconds
    /// when the method sets its own timeout.
    Call {
        /// `#[rota(timeout_ms = N)]`.
        timeout_ms: Option<u64>,
    },
    /// `#[rota(oneway)]`: the caller does not wait for the method.
    Oneway,
}

impl Contract {
    /// The contract's name, as reported by the server.
    pub(crate) fn name(&self) -> String {
        self.ident.unraw().to_string()
    }

    /// `BillingClient` for `Billing`.
    pub(crate) fn client_ident(&self) -> Ident {
        format_ident!("{}Client", self.ident.unraw(), span = self.ident.span())
    }

    /// `BillingServer` for `Billing`.
    pub(crate) fn server_ident(&self) -> Ident {
        format_ident!("{}Server", self.ident.unraw(), span = self.ident.span())
    }

    /// `__rota_args__Billing__invoice` for `Billing::invoice`: the hidden
    /// struct of the method's arguments. It sits next to the trait rather
    /// than in a module of its own, so that a contract declared in a function
    /// body can use types declared there too.
    pub(crate) fn args_struct(&self, method: &Method) -> Ident {
        format_ident!(
            "__rota_args__{}__{}",
            self.ident.unraw(),
            method.ident.unraw(),
            span = Span::call_site()
        )
    }

    /// The server's type parameter: `S`, unless the trait itself is named so.
    pub(crate) fn service_param(&self) -> Ident {
        if self.ident == "S" {
            format_ident!("Service")
        } else {
            format_ident!("S")
        }
    }
}

impl Method {
    /// The method's name on the wire.
    pub(crate) fn name(&self) -> String {
        self.ident.unraw().to_string()
    }

    /// The method's doc comments.
    pub(crate) fn docs(&self) -> impl Iterator<Item = &Attribute> {
        self.attrs.iter().filter(|attr| attr.path().is_ident("doc"))
    }
}
