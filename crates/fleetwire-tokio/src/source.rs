//! Who a network peer is, for limits: one [`Source`] type used by every per-source cap,
//! throttle and lockout lane in fleetwire, so that no limit keys IPv6 peers differently.
//!
//! A source is an IPv4 address, or the /64 prefix of an IPv6 address: one host (or one home
//! router) is routinely given a whole /64, and can pick any of its 2^64 addresses per connection,
//! so a limit keyed by the full IPv6 address is no limit at all. IPv4-mapped IPv6 addresses
//! (`::ffff:a.b.c.d`, what a dual-stack socket reports for an IPv4 peer) count as their IPv4
//! address.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

/// An IPv4 address, or the /64 prefix of an IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source([u8; 9]);

impl Source {
    /// The source of a peer address.
    pub fn of(ip: IpAddr) -> Self {
        let mut key = [0u8; 9];
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                key[0] = 4;
                key[1..5].copy_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                key[0] = 6;
                key[1..].copy_from_slice(&v6.octets()[..8]);
            }
        }
        Self(key)
    }

    /// The source of a peer socket address (the port does not count).
    pub fn of_peer(peer: SocketAddr) -> Self {
        Self::of(peer.ip())
    }

    /// Nine bytes: `4` and the IPv4 address (zero-padded), or `6` and the /64 prefix. Stable:
    /// usable as a key in lockout tables and stores.
    pub fn as_bytes(&self) -> &[u8; 9] {
        &self.0
    }
}

impl fmt::Display for Source {
    /// `192.0.2.7`, or `2001:db8:1:2::/64`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0[0] == 4 {
            Ipv4Addr::new(self.0[1], self.0[2], self.0[3], self.0[4]).fmt(f)
        } else {
            let mut octets = [0u8; 16];
            octets[..8].copy_from_slice(&self.0[1..]);
            write!(f, "{}/64", Ipv6Addr::from(octets))
        }
    }
}

/// At most `max` connections at once from any one [`Source`]: the per-source cap of a
/// listener, so that one address cannot take every slot while others wait. Memory: one map
/// entry per source with a connection open.
#[derive(Debug)]
pub struct PerSourceCap {
    max: u32,
    open: Mutex<HashMap<Source, u32>>,
}

impl PerSourceCap {
    /// A cap of `max` connections per source (at least 1).
    pub fn new(max: u32) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for one more connection from `ip`, or `None` if its source is at the cap. The
    /// slot is given back when dropped.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<SourceSlot> {
        let source = Source::of(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(source).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            cap: self.clone(),
            source,
        })
    }

    /// Connections open from `ip`'s source now.
    pub fn open(&self, ip: IpAddr) -> u32 {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&Source::of(ip)).copied().unwrap_or(0)
    }

    /// The cap.
    pub fn max(&self) -> u32 {
        self.max
    }
}

/// One connection's place under a [`PerSourceCap`]; released on drop.
#[derive(Debug)]
pub struct SourceSlot {
    cap: Arc<PerSourceCap>,
    source: Source,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self.cap.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_hosts_of_one_prefix_are_one_source() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:eeee:dddd:cccc".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Source::of(a), Source::of(b));
        assert_ne!(Source::of(a), Source::of(c));
        assert_eq!(Source::of(a).to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn ipv4_and_its_mapped_form_are_one_source() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(Source::of(v4), Source::of(mapped));
        assert_eq!(Source::of(mapped).to_string(), "192.0.2.7");
        assert_ne!(Source::of(v4), Source::of("192.0.2.8".parse().unwrap()));
    }

    #[test]
    fn a_source_at_its_cap_waits_for_a_slot_and_others_do_not() {
        let cap = PerSourceCap::new(2);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let a2: IpAddr = "2001:db8::2".parse().unwrap();
        let b: IpAddr = "192.0.2.1".parse().unwrap();
        let first = cap.try_acquire(a).unwrap();
        let _second = cap.try_acquire(a2).unwrap();
        assert!(cap.try_acquire(a).is_none(), "a /64 is one source");
        assert!(cap.try_acquire(b).is_some());
        drop(first);
        assert!(cap.try_acquire(a).is_some());
        assert_eq!(cap.open(b), 0, "dropped slots are given back");
    }

    #[test]
    fn v4_and_v6_never_collide() {
        // 0.0.0.0 and ::/64 share the zero bytes; the family byte keeps them apart.
        assert_ne!(
            Source::of("0.0.0.0".parse().unwrap()),
            Source::of("::1".parse().unwrap())
        );
    }
}
