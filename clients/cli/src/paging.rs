//! The paging flags the `list` commands share (`--offset`, `--limit`, `--order`, `--desc`, `--all`) and the note
//! on stderr that says which part of the list was printed.

use clap::{Args, ValueEnum};
use hookwire_client::proto;

/// What a list is ordered by.
// No doc comments on the variants: clap would print them one per line in every list command's help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OrderArg {
    Created,
    Name,
}

/// The paging flags of a `list` command.
#[derive(Debug, Clone, Args)]
pub struct PageArgs {
    /// Skip this many
    #[arg(long, default_value_t = 0, conflicts_with = "all")]
    pub offset: u32,
    /// Show at most this many, 1 to 200
    #[arg(long, default_value_t = 50, conflicts_with = "all")]
    pub limit: u32,
    /// Order by creation time or by name (ties by id)
    #[arg(long, value_enum, default_value = "created", value_name = "created|name")]
    pub order: OrderArg,
    /// Last first: newest, or last by name
    #[arg(long)]
    pub desc: bool,
    /// Every page, one after the other, instead of --offset/--limit
    #[arg(long)]
    pub all: bool,
}

impl PageArgs {
    /// The `order_by` field of a list request.
    pub fn order_by(&self) -> i32 {
        match self.order {
            OrderArg::Created => proto::ListOrder::Created as i32,
            OrderArg::Name => proto::ListOrder::Name as i32,
        }
    }
}

/// Tells on stderr which part of the list was printed, when it is not the whole list, and how to get the next
/// page; stdout keeps the one document.
pub fn note_page(offset: u32, num_shown: usize, total: u32) {
    let num_shown = u32::try_from(num_shown).unwrap_or(u32::MAX);
    if offset == 0 && num_shown >= total {
        return;
    }
    if num_shown == 0 {
        eprintln!("nothing at offset {offset}: there are {total} in all");
        return;
    }
    let last = offset.saturating_add(num_shown);
    if last < total {
        eprintln!("showing {}-{last} of {total}; next page: --offset {last} (or --all)", offset + 1);
    } else {
        eprintln!("showing {}-{last} of {total}", offset + 1);
    }
}
