//! Walking Dwolla's paged lists: every item by `_links.next`, and the guard that turns a list
//! linking back to a page already read into an error rather than an endless loop.

use std::collections::HashSet;

use super::{Client, DwollaError, Embedded, Page};

/// The `_links.next` URLs a walk through one list has followed.
#[derive(Debug)]
pub struct LoopGuard {
    list: &'static str,
    followed: HashSet<String>,
}

impl LoopGuard {
    /// `list` names the list in the error, e.g. "transfer list".
    pub fn new(list: &'static str) -> LoopGuard {
        LoopGuard {
            list,
            followed: HashSet::new(),
        }
    }

    /// Records that `next` is about to be followed; a link followed before is an error.
    pub fn follow(&mut self, next: &str) -> Result<(), DwollaError> {
        if self.followed.insert(next.to_owned()) {
            Ok(())
        } else {
            Err(DwollaError::Decode {
                status: 200,
                detail: format!("the {} links back to {next}", self.list),
                request_id: None,
            })
        }
    }
}

/// Every item of a list from its first page on; stops after `max` items when given.
pub async fn all_pages<T: Embedded>(
    client: &Client,
    first: Page<T>,
    max: Option<usize>,
) -> Result<Vec<T>, DwollaError> {
    let mut guard = LoopGuard::new("list");
    let mut items = Vec::new();
    let mut page = first;
    loop {
        items.append(&mut page.items);
        if let Some(max) = max
            && items.len() >= max
        {
            items.truncate(max);
            return Ok(items);
        }
        match client.next_page(&page).await? {
            None => return Ok(items),
            Some(following) => {
                if let Some(url) = &page.next {
                    guard.follow(url)?;
                }
                page = following;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_followed_twice_is_a_loop() {
        let mut guard = LoopGuard::new("transfer list");
        guard.follow("https://x/transfers?cursor=a").unwrap();
        guard.follow("https://x/transfers?cursor=b").unwrap();
        let err = guard.follow("https://x/transfers?cursor=a").unwrap_err();
        assert!(
            err.to_string()
                .contains("the transfer list links back to https://x/transfers?cursor=a"),
            "{err}"
        );
    }
}
