//! The `#[trio::main]` and `#[trio::test]` attributes of the
//! [`trio`](https://docs.rs/trio) runtime. Use them through `trio`
//! (`#[trio::main]`, `#[trio::test]`), not from this crate directly.
//!
//! # Design
//!
//! Each attribute turns an `async fn` into a synchronous one that runs the
//! original body on a fresh trio run. The body is kept as a nested `async fn`
//! with the user's exact signature (name, return type), so `?` and `return`
//! behave exactly as written and the return type drives inference; the outer
//! function only hands the nested function's future to the runtime:
//!
//! - `#[trio::main]` expands to `fn main() -> std::process::ExitCode` that
//!   calls `trio::run`; an error is printed to stderr as `Error: {error}` and
//!   the process exits with status 1 (after destructors ran: no
//!   `process::exit`). A run interrupted by Ctrl-C (an
//!   `ErrorKind::Interrupted` error) ends the Unix way instead:
//!   `trio::signal::Interrupted::exit_process` restores the signal's default
//!   disposition and re-raises it, so the parent sees the process killed by
//!   SIGINT (the run and its destructors have finished by then).
//! - `#[trio::test]` expands to a `#[test] fn` that calls
//!   `trio::testing::run_test(options, body())`, where all the run-time logic
//!   lives (clock, seed, failure report), so it can be used and tested
//!   without the macro.
//!
//! # Invariants
//!
//! - The macros never panic on bad input: every problem (not `async`,
//!   parameters, generics, an unknown option, a duplicate option, a second
//!   `#[test]`) is a `syn::Error` with the span of the offending tokens.
//! - Generated code names the runtime as `::trio`, so the user's crate must
//!   depend on `trio` under that name.
//! - The user's attributes (`#[ignore]`, `#[should_panic]`, docs, lint
//!   levels) stay on the generated outer function.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ItemFn, Lit, Meta, Token};

/// (The attribute itself; use it as `#[trio::main]`, documented there.)
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_main(args.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// (The attribute itself; use it as `#[trio::test]`, documented there.)
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_test(args.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Checks that `f` is a plain `async fn` without parameters or generics.
fn check_signature(f: &ItemFn, attr: &str) -> syn::Result<()> {
    let sig = &f.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span(),
            format!("`#[{attr}]` can only be applied to an `async fn`"),
        ));
    }
    if let Some(c) = &sig.constness {
        return Err(syn::Error::new(
            c.span(),
            format!("`#[{attr}]` cannot be applied to a `const fn`"),
        ));
    }
    if let Some(u) = &sig.unsafety {
        return Err(syn::Error::new(
            u.span(),
            format!("`#[{attr}]` cannot be applied to an `unsafe fn`"),
        ));
    }
    if let Some(abi) = &sig.abi {
        return Err(syn::Error::new_spanned(
            abi,
            format!("`#[{attr}]` cannot be applied to an `extern` fn"),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            format!("`#[{attr}]` functions cannot be generic"),
        ));
    }
    if !sig.inputs.is_empty() {
        return Err(syn::Error::new_spanned(
            &sig.inputs,
            format!("`#[{attr}]` functions cannot take parameters"),
        ));
    }
    if let Some(v) = &sig.variadic {
        return Err(syn::Error::new_spanned(
            v,
            format!("`#[{attr}]` functions cannot be variadic"),
        ));
    }
    Ok(())
}

/// The span of the declared return type (or of the name if there is none),
/// so that a return type the runtime does not accept is reported there.
fn output_span(f: &ItemFn) -> Span {
    match &f.sig.output {
        syn::ReturnType::Type(_, ty) => ty.span(),
        syn::ReturnType::Default => f.sig.ident.span(),
    }
}

/// The nested `async fn` that carries the user's body and signature.
fn body_fn(f: &ItemFn) -> TokenStream2 {
    let sig = &f.sig;
    let block = &f.block;
    quote! { #sig #block }
}

fn expand_main(args: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    if !args.is_empty() {
        return Err(syn::Error::new_spanned(
            args,
            "`#[trio::main]` takes no options (use `trio::Runner` for a custom clock or seed)",
        ));
    }
    let f: ItemFn = syn::parse2(item)?;
    check_signature(&f, "trio::main")?;
    let attrs = &f.attrs;
    let vis = &f.vis;
    let name = &f.sig.ident;
    let body = body_fn(&f);
    let into_result = quote_spanned! {output_span(&f)=>
        ::trio::TaskResult::into_task_result(#name().await)
    };
    Ok(quote! {
        #(#attrs)*
        #vis fn #name() -> ::std::process::ExitCode {
            #body
            match ::trio::run(async { #into_result }) {
                ::std::result::Result::Ok(()) => ::std::process::ExitCode::SUCCESS,
                ::std::result::Result::Err(error) => {
                    // Interrupted by Ctrl-C (or SIGTERM): die of that signal,
                    // as Unix programs do, instead of exiting with 1.
                    if let ::std::option::Option::Some(interrupted) =
                        ::trio::signal::Interrupted::of(&error)
                    {
                        ::std::mem::drop(error);
                        interrupted.exit_process();
                    }
                    ::std::eprintln!("Error: {error}");
                    ::std::process::ExitCode::FAILURE
                }
            }
        }
    })
}

/// The parsed options of `#[trio::test(...)]`.
struct TestArgs {
    autojump: Option<Span>,
    seed: Option<Expr>,
}

fn parse_test_args(args: TokenStream2) -> syn::Result<TestArgs> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
    let mut out = TestArgs {
        autojump: None,
        seed: None,
    };
    for meta in metas {
        let name = meta.path().get_ident().map(ToString::to_string);
        match (name.as_deref(), &meta) {
            (Some("autojump"), Meta::Path(p)) => {
                if out.autojump.is_some() {
                    return Err(syn::Error::new_spanned(p, "`autojump` given twice"));
                }
                out.autojump = Some(p.span());
            }
            (Some("autojump"), _) => {
                return Err(syn::Error::new_spanned(
                    meta,
                    "`autojump` takes no value: write `#[trio::test(autojump)]`",
                ));
            }
            (Some("seed"), Meta::NameValue(nv)) => {
                if out.seed.is_some() {
                    return Err(syn::Error::new_spanned(&nv.path, "`seed` given twice"));
                }
                if let Expr::Lit(ExprLit {
                    lit: Lit::Int(int), ..
                }) = &nv.value
                {
                    // Check literals here, for an error at the literal.
                    int.base10_parse::<u64>().map_err(|_| {
                        syn::Error::new_spanned(int, "`seed` must be an unsigned 64-bit integer")
                    })?;
                }
                out.seed = Some(nv.value.clone());
            }
            (Some("seed"), _) => {
                return Err(syn::Error::new_spanned(
                    meta,
                    "`seed` needs a value: write `#[trio::test(seed = 42)]`",
                ));
            }
            _ => {
                return Err(syn::Error::new_spanned(
                    meta.path(),
                    "unknown `#[trio::test]` option; expected `autojump` or `seed = <u64>`",
                ));
            }
        }
    }
    Ok(out)
}

fn expand_test(args: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let args = parse_test_args(args)?;
    let f: ItemFn = syn::parse2(item)?;
    check_signature(&f, "trio::test")?;
    if let Some(a) = f.attrs.iter().find(|a| a.path().is_ident("test")) {
        return Err(syn::Error::new_spanned(
            a,
            "`#[trio::test]` already makes this a test: remove the `#[test]`",
        ));
    }
    let attrs = &f.attrs;
    let vis = &f.vis;
    let name = &f.sig.ident;
    let body = body_fn(&f);
    let mut options = quote! { ::trio::testing::TestOptions::new() };
    if let Some(span) = args.autojump {
        options = quote_spanned! {span=> #options.autojump() };
    }
    if let Some(seed) = &args.seed {
        let span = seed.span();
        options = quote_spanned! {span=> #options.seed(#seed) };
    }
    let run = quote_spanned! {output_span(&f)=>
        ::trio::testing::run_test(#options, #name())
    };
    Ok(quote! {
        #[::core::prelude::v1::test]
        #(#attrs)*
        #vis fn #name() {
            #body
            #run
        }
    })
}
