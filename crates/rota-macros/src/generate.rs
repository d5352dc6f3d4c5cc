//! Writes the code of a validated [`Contract`]: the `Send` trait, the hidden
//! argument structs, the client and the server. Every dependency is named by
//! an absolute path, so the code works whatever the user imported.

use proc_macro2::{Literal, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemTrait, Pat, TraitItem};

use crate::model::{Contract, Delivery, Method, Output};
use crate::parse::is_rota_attr;

/// All the code of a contract.
pub(crate) fn contract(contract: &Contract) -> TokenStream {
    let contract_trait = contract_trait(contract);
    let args = args_structs(contract);
    let client = client(contract);
    let server = server(contract);
    quote! {
        #contract_trait
        #args
        #client
        #server
    }
}

/// The trait with every `async fn` turned into a `fn` returning a `Send`
/// future, so that servers can run calls on any thread. Implementations still
/// write `async fn`.
fn contract_trait(contract: &Contract) -> TokenStream {
    let Contract {
        attrs, vis, ident, ..
    } = contract;
    let methods = contract.methods.iter().map(|method| {
        let Method {
            attrs, ident, args, ..
        } = method;
        let arg_idents = args.iter().map(|arg| &arg.ident);
        let arg_types = args.iter().map(|arg| &arg.ty);
        let returns = match &method.returns {
            Some(ty) => quote!(#ty),
            None => quote!(()),
        };
        quote! {
            #(#attrs)*
            fn #ident(&self, #(#arg_idents: #arg_types),*)
                -> impl ::core::future::Future<Output = #returns> + ::core::marker::Send;
        }
    });
    quote! {
        #(#attrs)*
        #vis trait #ident: ::core::marker::Send + ::core::marker::Sync + 'static {
            #(#methods)*
        }
    }
}

/// One hidden struct per method holding its arguments: the body of a call
/// is that struct, encoded (an object keyed by argument name).
fn args_structs(contract: &Contract) -> TokenStream {
    let structs = contract.methods.iter().map(|method| {
        let ident = contract.args_struct(method);
        let fields = method.args.iter().map(|arg| {
            let (ident, ty) = (&arg.ident, &arg.ty);
            quote!(#ident: #ty)
        });
        quote! {
            #[doc(hidden)]
            #[allow(non_camel_case_types, dead_code)]
            #[derive(::rota::__private::serde::Serialize, ::rota::__private::serde::Deserialize)]
            #[serde(crate = "::rota::__private::serde")]
            struct #ident { #(#fields),* }
        }
    });
    quote!(#(#structs)*)
}

/// The client: one `async fn` per method.
fn client(contract: &Contract) -> TokenStream {
    // Methods are exactly as visible as the trait: `pub` for a `pub` trait,
    // never more visible than the contract (which would be unreachable).
    let vis = &contract.vis;
    let fn_vis = vis;
    let client = contract.client_ident();
    let trait_ident = &contract.ident;
    let doc = format!(
        " Client of the [`{trait_ident}`] contract: each method sends a call to the service \
         through a broker and returns its result.\n\n\
         Cloning is cheap, and clones share the connection. A method returning \
         `Result<T, E>` in the contract returns `Result<T, rota::CallError<E>>` here, \
         any other `T` gives `Result<T, rota::RpcError>`."
    );

    let methods = contract.methods.iter().map(|method| {
        let ident = &method.ident;
        let name = method.name();
        let docs: Vec<_> = method.docs().collect();
        let fallback_doc = docs
            .is_empty()
            .then(|| format!(" Calls `{trait_ident}::{name}` on the service."));
        let fallback_doc = fallback_doc.iter();
        let arg_idents: Vec<_> = method.args.iter().map(|arg| &arg.ident).collect();
        let arg_types = method.args.iter().map(|arg| &arg.ty);
        let args_struct = contract.args_struct(method);
        let body = quote!(&#args_struct { #(#arg_idents),* });
        let timeout = match &method.delivery {
            Delivery::Call {
                timeout_ms: Some(millis),
            } => {
                let millis = Literal::u64_unsuffixed(*millis);
                quote!(::core::option::Option::Some(::core::time::Duration::from_millis(#millis)))
            }
            Delivery::Call { timeout_ms: None } | Delivery::Oneway => {
                quote!(::core::option::Option::None)
            }
        };
        let (returns, call) = match (&method.delivery, &method.output) {
            (Delivery::Oneway, _) => (
                quote!(::core::result::Result<(), ::rota::RpcError>),
                quote!(self.inner.send(#name, #body).await),
            ),
            (Delivery::Call { .. }, Output::Fallible { ok, err }) => (
                quote!(::core::result::Result<#ok, ::rota::CallError<#err>>),
                quote!(self.inner.call::<_, #ok, #err>(#name, #timeout, #body).await),
            ),
            (Delivery::Call { .. }, Output::Value(ty)) => (
                quote!(::core::result::Result<#ty, ::rota::RpcError>),
                quote!(self.inner.call_infallible::<_, #ty>(#name, #timeout, #body).await),
            ),
            (Delivery::Call { .. }, Output::Unit) => (
                quote!(::core::result::Result<(), ::rota::RpcError>),
                quote!(self.inner.call_infallible::<_, ()>(#name, #timeout, #body).await),
            ),
        };
        quote! {
            #(#docs)*
            #(#[doc = #fallback_doc])*
            #fn_vis async fn #ident(&self, #(#arg_idents: #arg_types),*) -> #returns {
                #call
            }
        }
    });

    quote! {
        #[doc = #doc]
        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        #[allow(dead_code)]
        #vis struct #client {
            inner: ::rota::__private::ServiceClient,
        }

        #[allow(dead_code)]
        impl #client {
            /// Creates a client of the service named `service`, calling through
            /// `client`: the `rota::Client` whose reply inbox the calls share.
            #fn_vis fn new(
                client: impl ::rota::IntoClient,
                service: impl ::core::convert::Into<::std::string::String>,
            ) -> Self {
                Self { inner: ::rota::__private::ServiceClient::new(client, service) }
            }

            /// A copy of this client whose calls time out after `timeout`,
            /// whatever the method's own `timeout_ms`.
            #fn_vis fn with_timeout(&self, timeout: ::core::time::Duration) -> Self {
                Self { inner: self.inner.with_timeout(timeout) }
            }

            /// A copy of this client that sends the header `name: value` with
            /// every call.
            #fn_vis fn with_header(
                &self,
                name: impl ::core::convert::Into<::std::string::String>,
                value: impl ::core::convert::Into<::std::string::String>,
            ) -> Self {
                Self { inner: self.inner.with_header(name, value) }
            }

            /// A copy of this client whose calls use `options`.
            #fn_vis fn with_options(&self, options: ::rota::CallOptions) -> Self {
                Self { inner: self.inner.with_options(options) }
            }

            /// The untyped client underneath.
            #fn_vis fn service_client(&self) -> &::rota::__private::ServiceClient {
                &self.inner
            }

            #(#methods)*
        }
    }
}

/// The server: `Dispatch` for any implementation of the trait.
fn server(contract: &Contract) -> TokenStream {
    // Methods are exactly as visible as the trait: `pub` for a `pub` trait,
    // never more visible than the contract (which would be unreachable).
    let vis = &contract.vis;
    let fn_vis = vis;
    let trait_ident = &contract.ident;
    let server = contract.server_ident();
    let s = contract.service_param();
    let name = contract.name();
    let method_names = contract.methods.iter().map(Method::name);
    let doc = format!(
        " Serves an implementation of the [`{trait_ident}`] contract: decodes each call, \
         runs the method and encodes its result.\n\n\
         Run it with [`serve`](Self::serve) or [`spawn`](Self::spawn)."
    );
    let arms = contract
        .methods
        .iter()
        .map(|method| dispatch_arm(contract, method, &s));

    quote! {
        #[doc = #doc]
        #[allow(dead_code)]
        #vis struct #server<#s> {
            service: ::std::sync::Arc<#s>,
        }

        #[allow(dead_code)]
        impl<#s: #trait_ident> #server<#s> {
            /// A server of `service`.
            #fn_vis fn new(service: #s) -> Self {
                Self { service: ::std::sync::Arc::new(service) }
            }

            /// A server of a service that is shared already.
            #fn_vis fn from_arc(service: ::std::sync::Arc<#s>) -> Self {
                Self { service }
            }

            /// Serves calls to the service named `service` from `broker` until
            /// `options`' shutdown token is cancelled, then drains.
            #fn_vis async fn serve(
                self,
                broker: impl ::rota::Broker + ::rota::Inboxes,
                service: &str,
                options: ::rota::ServeOptions,
            ) -> ::core::result::Result<(), ::rota::ServeError> {
                ::rota::serve(self, broker, service, options).await
            }

            /// Serves calls like [`serve`](Self::serve) on a task of its own;
            /// the handle shuts it down. Call it inside a tokio runtime.
            #fn_vis fn spawn(
                self,
                broker: impl ::rota::Broker + ::rota::Inboxes,
                service: &str,
                options: ::rota::ServeOptions,
            ) -> ::rota::ServerHandle {
                ::rota::spawn_server(self, broker, service, options)
            }
        }

        impl<#s> ::core::clone::Clone for #server<#s> {
            fn clone(&self) -> Self {
                Self { service: ::std::sync::Arc::clone(&self.service) }
            }
        }

        impl<#s> ::core::fmt::Debug for #server<#s> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(::core::stringify!(#server)).finish_non_exhaustive()
            }
        }

        impl<#s: #trait_ident> ::rota::Dispatch for #server<#s> {
            fn contract(&self) -> &'static str {
                #name
            }

            fn methods(&self) -> &'static [&'static str] {
                &[#(#method_names),*]
            }

            fn dispatch(
                &self,
                call: ::rota::Call,
            ) -> ::core::result::Result<
                ::rota::__private::BoxFuture<'static, ::rota::Outcome>,
                ::rota::Fault,
            > {
                match call.method() {
                    #(#arms)*
                    other => ::core::result::Result::Err(
                        ::rota::__private::unknown_method(#name, other),
                    ),
                }
            }
        }
    }
}

/// The `match` arm of one method in `Dispatch::dispatch`.
fn dispatch_arm(contract: &Contract, method: &Method, s: &syn::Ident) -> TokenStream {
    let trait_ident = &contract.ident;
    let args_struct = contract.args_struct(method);
    let ident = &method.ident;
    let name = method.name();
    let fields = method.args.iter().map(|arg| &arg.ident);
    // Called by path: a method named like one of `Arc`'s (`clone`) must still
    // reach the service.
    let run = quote!(<#s as #trait_ident>::#ident(&*service, #(args.#fields),*).await);
    let decode = if method.args.is_empty() {
        quote!(let _: #args_struct = call.decode_args()?;)
    } else {
        quote!(let args: #args_struct = call.decode_args()?;)
    };
    // The encoding calls carry the return type's span, so that a result that
    // is not `Serialize` is reported at the contract's return type.
    let span = method
        .returns
        .as_ref()
        .map_or_else(|| ident.span(), |ty| ty.span());
    let outcome = match (&method.delivery, &method.output) {
        (Delivery::Oneway, _) | (Delivery::Call { .. }, Output::Unit) => quote! {
            #run;
            ::rota::__private::encode_ok(codec, &())
        },
        (Delivery::Call { .. }, Output::Value(_)) => quote_spanned! {span=>
            ::rota::__private::encode_ok(codec, &#run)
        },
        (Delivery::Call { .. }, Output::Fallible { .. }) => quote_spanned! {span=>
            ::rota::__private::encode_result(codec, #run)
        },
    };
    quote! {
        #name => {
            #decode
            let service = ::std::sync::Arc::clone(&self.service);
            let codec = call.codec();
            ::core::result::Result::Ok(::std::boxed::Box::pin(async move { #outcome }))
        }
    }
}

/// The trait as written, cleaned of what rustc would report again after our
/// errors: emitted when validation fails, so code using the trait still
/// resolves.
pub(crate) fn fallback(mut item: ItemTrait) -> TokenStream {
    item.attrs.retain(|attr| !is_rota_attr(attr));
    for trait_item in &mut item.items {
        let TraitItem::Fn(function) = trait_item else {
            continue;
        };
        function.attrs.retain(|attr| !is_rota_attr(attr));
        let sig = &mut function.sig;
        sig.constness = None;
        sig.variadic = None;
        for input in &mut sig.inputs {
            let FnArg::Typed(typed) = input else {
                continue;
            };
            typed.attrs.clear();
            // Patterns are not allowed in a method without a body.
            match &mut *typed.pat {
                Pat::Ident(pat) if pat.subpat.is_none() => {
                    pat.by_ref = None;
                    pat.mutability = None;
                }
                pat => *pat = syn::parse_quote_spanned!(pat.span()=> _),
            }
        }
    }
    quote!(#item)
}
