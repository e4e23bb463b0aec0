//! `store_capability!`: how a narrow store capability is declared once and reaches every
//! backend.
//!
//! A capability is a trait of async methods (`TicketStore`, `WebhookStore`, …). The two
//! backends implement it in `sql/`, whose files are compiled once inside each backend's module
//! so the SQL exists once. `AnyStore`, the backend chosen at run time, forwards every method to
//! the backend it holds; that forwarding is generated here from the trait's own declaration,
//! so adding a method means writing its signature once and its SQL once, and no hand-written
//! `match` per method can forget a backend or drift from the signature.
//!
//! Why a declarative macro rather than a generic implementation over `sqlx::Database`: a
//! generic query function needs `Encode + Type` bounds for every bound value and `FromRow`
//! bounds for every row type, repeated on each function (bounds on a trait's associated types
//! are not implied), which buried the SQL under where-clauses. The macro only writes the
//! forwarding; it holds no SQL.

/// Declares a capability trait and its implementation for `AnyStore`.
///
/// Each method is written `async fn name(&self, arg: Type, …) -> Output;`. The trait gets the
/// same method returning `impl Future<Output = Output> + Send` (so callers can spawn it), and
/// `AnyStore` gets a method that calls the backend's.
macro_rules! store_capability {
    (
        $(#[$attr:meta])*
        pub trait $name:ident {
            $(
                $(#[$method_attr:meta])*
                async fn $method:ident(&self $(, $arg:ident: $arg_ty:ty)* $(,)?) -> $ret:ty;
            )*
        }
    ) => {
        $(#[$attr])*
        pub trait $name {
            $(
                $(#[$method_attr])*
                fn $method(&self $(, $arg: $arg_ty)*)
                    -> impl ::std::future::Future<Output = $ret> + Send;
            )*
        }

        impl $name for $crate::store::AnyStore {
            $(
                async fn $method(&self $(, $arg: $arg_ty)*) -> $ret {
                    match self {
                        Self::Sqlite(store) => store.$method($($arg),*).await,
                        Self::Postgres(store) => store.$method($($arg),*).await,
                    }
                }
            )*
        }
    };
}
pub(crate) use store_capability;
