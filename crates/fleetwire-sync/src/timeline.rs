//! The shared timeline: a looping playlist anchored at a group-clock instant.

use crate::wire::Item;

/// What the group plays: a looping list of items. The server hands the same playlist to
/// every member; the leader announces it with an anchor. A higher `id` is a newer playlist.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Playlist {
    /// Its id (a version: newer playlists have higher ids).
    pub id: u64,
    /// The items, 1 to 64, each at least 1 ms long.
    pub items: Vec<Item>,
}

/// The first showing that starts at or after group time `group` in a looping playlist whose
/// item `anchor_index` starts at `anchor_start`: `(index, start)`. `None` for an empty
/// playlist or an anchor outside it.
pub fn next_boundary(
    items: &[Item],
    anchor_index: u16,
    anchor_start: u64,
    group: u64,
) -> Option<(u16, u64)> {
    if items.is_empty()
        || usize::from(anchor_index) >= items.len()
        || items.iter().any(|i| i.duration_ms == 0)
    {
        return None;
    }
    let t = Timeline {
        playlist: 0,
        items: items.to_vec(),
        anchor_index,
        anchor_start,
    };
    let s = t.next_at_or_after(group);
    Some((s.index, s.start))
}

/// A playlist anchored on the group clock: item `anchor_index` starts at `anchor_start`
/// (group nanoseconds) and the list loops from there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Timeline {
    pub(crate) playlist: u64,
    pub(crate) items: Vec<Item>,
    pub(crate) anchor_index: u16,
    pub(crate) anchor_start: u64,
}

/// One scheduled showing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) index: u16,
    pub(crate) start: u64,
    pub(crate) item: Item,
}

impl Timeline {
    fn duration_ns(&self, index: u16) -> u64 {
        u64::from(self.items[usize::from(index)].duration_ms) * 1_000_000
    }

    fn cycle_ns(&self) -> u64 {
        self.items
            .iter()
            .map(|i| u64::from(i.duration_ms) * 1_000_000)
            .sum::<u64>()
            .max(1)
    }

    /// The first showing that starts at or after `group`.
    pub(crate) fn next_at_or_after(&self, group: u64) -> Slot {
        let n = self.items.len() as u16;
        if group <= self.anchor_start {
            return self.slot(self.anchor_index, self.anchor_start);
        }
        let cycle = self.cycle_ns();
        let elapsed = group - self.anchor_start;
        let mut start = self.anchor_start.saturating_add((elapsed / cycle) * cycle);
        let mut index = self.anchor_index;
        while start < group {
            start = start.saturating_add(self.duration_ns(index));
            index = (index + 1) % n;
        }
        self.slot(index, start)
    }

    /// The showing in progress at `group` (the anchor's predecessor is unknown: before the
    /// anchor, `None`).
    pub(crate) fn at(&self, group: u64) -> Option<Slot> {
        if group < self.anchor_start {
            return None;
        }
        let n = self.items.len() as u16;
        let cycle = self.cycle_ns();
        let mut start = self
            .anchor_start
            .saturating_add(((group - self.anchor_start) / cycle) * cycle);
        let mut index = self.anchor_index;
        loop {
            let end = start.saturating_add(self.duration_ns(index));
            if end > group || end == u64::MAX {
                return Some(self.slot(index, start));
            }
            start = end;
            index = (index + 1) % n;
        }
    }

    /// The same schedule re-anchored at the showing in progress at `group` (keeps numbers small
    /// in announcements; changes nothing a member plays).
    pub(crate) fn reanchored(&self, group: u64) -> Self {
        match self.at(group) {
            Some(s) => Self {
                anchor_index: s.index,
                anchor_start: s.start,
                ..self.clone()
            },
            None => self.clone(),
        }
    }

    fn slot(&self, index: u16, start: u64) -> Slot {
        Slot {
            index,
            start,
            item: self.items[usize::from(index)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tl() -> Timeline {
        Timeline {
            playlist: 1,
            items: vec![
                Item {
                    id: 10,
                    duration_ms: 1000,
                },
                Item {
                    id: 20,
                    duration_ms: 2000,
                },
                Item {
                    id: 30,
                    duration_ms: 500,
                },
            ],
            anchor_index: 1,
            anchor_start: 10_000_000_000,
        }
    }

    #[test]
    fn boundaries_loop_from_the_anchor() {
        let t = tl();
        let ms = 1_000_000;
        assert_eq!(t.next_at_or_after(0).start, 10_000 * ms);
        let s = t.next_at_or_after(10_000 * ms + 1);
        assert_eq!((s.index, s.start, s.item.id), (2, 12_000 * ms, 30));
        let s = t.next_at_or_after(12_500 * ms);
        assert_eq!((s.index, s.start), (0, 12_500 * ms));
        // One full cycle (3.5 s) later, same item.
        let s = t.next_at_or_after(10_000 * ms + 3_500 * ms);
        assert_eq!((s.index, s.start), (1, 13_500 * ms));
        let now = t.at(13_000 * ms).unwrap();
        assert_eq!((now.index, now.start), (0, 12_500 * ms));
        assert_eq!(t.at(9_000 * ms), None);
        let r = t.reanchored(1_000_000 * ms);
        for g in [1_000_000 * ms, 1_000_001 * ms, 2_000_000 * ms] {
            assert_eq!(r.next_at_or_after(g), t.next_at_or_after(g));
        }
    }
}
