//! The counter convention shared by every stage: each stage keeps a plain struct of `u64`
//! fields and lists them, with their dotted names (`tcp.ooo_segments`), through [`Counters`].

/// A stage's counters, listed by name for summaries, JSON and metrics.
pub trait Counters {
    /// Calls `f` once per counter with its dotted name and value, zero values included.
    fn visit(&self, f: &mut dyn FnMut(&str, u64));
}

/// Declares a stage's counter struct: plain `pub u64` fields, each with its dotted name, and
/// the [`Counters`] impl that lists them in declaration order.
#[macro_export]
macro_rules! counters {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fdoc:meta])* $field:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: u64,)*
        }

        impl $crate::counters::Counters for $name {
            fn visit(&self, f: &mut dyn FnMut(&str, u64)) {
                $(f($text, self.$field);)*
            }
        }
    };
}
