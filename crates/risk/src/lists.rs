//! Deny and allow lists on users, devices, IP addresses or networks (CIDR) and merchants.
//! Every entry says why, who put it there and when it ends: a list entry nobody can explain
//! is exactly the silent restriction Xiezhi exists to end.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use thiserror::Error;

/// Most entries across all lists.
pub const MAX_LIST_ENTRIES: usize = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ListKind {
    Deny,
    Allow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    User,
    Device,
    /// An address or a network in CIDR notation.
    Ip,
    Merchant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewListEntry {
    pub list: ListKind,
    pub subject_kind: SubjectKind,
    pub subject: String,
    pub reason: String,
    pub author: String,
    /// RFC 3339; absent means until removed.
    #[serde(default)]
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    pub id: String,
    pub list: ListKind,
    pub subject_kind: SubjectKind,
    pub subject: String,
    pub reason: String,
    pub author: String,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("list entry: {message}")]
pub struct ListError {
    pub field: &'static str,
    pub message: String,
}

/// A parsed network: the address masked to its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Network {
    v6: bool,
    prefix_len: u8,
    bits: u128,
}

fn address_bits(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(v4) => (false, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (false, u128::from(u32::from(v4))),
            None => (true, u128::from(v6)),
        },
    }
}

fn mask(bits: u128, v6: bool, prefix_len: u8) -> u128 {
    let width = if v6 { 128 } else { 32 };
    if prefix_len == 0 {
        0
    } else {
        let shift = width - u32::from(prefix_len);
        (bits >> shift) << shift
    }
}

fn parse_network(text: &str) -> Result<Network, ListError> {
    let bad = || ListError { field: "subject", message: format!("`{text}` is not an IP address or CIDR network") };
    let (address, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let ip: IpAddr = address.parse().map_err(|_| bad())?;
    let (v6, bits) = address_bits(ip);
    let width = if v6 { 128 } else { 32 };
    let prefix_len = match prefix {
        Some(p) => p.parse::<u8>().ok().filter(|p| u32::from(*p) <= width).ok_or_else(bad)?,
        None => width as u8,
    };
    Ok(Network { v6, prefix_len, bits: mask(bits, v6, prefix_len) })
}

#[derive(Debug, Default, Clone)]
pub struct Lists {
    entries: BTreeMap<String, ListEntry>,
    exact: HashMap<(ListKind, SubjectKind, String), Vec<String>>,
    networks: HashMap<(ListKind, Network), Vec<String>>,
    /// Distinct (kind, v6, prefix length) in use, so a lookup masks once per length.
    prefix_lengths: HashSet<(ListKind, bool, u8)>,
}

/// The subjects of one payment, as looked up in the lists.
pub struct Subjects<'a> {
    pub user_id: &'a str,
    pub device_id: Option<&'a str>,
    pub ip: Option<IpAddr>,
    pub merchant_id: &'a str,
}

impl Lists {
    pub fn validate(entry: &NewListEntry) -> Result<Option<i64>, ListError> {
        let text_ok = |s: &str| !s.trim().is_empty() && s.chars().count() <= 256 && !s.chars().any(char::is_control);
        if !text_ok(&entry.subject) {
            return Err(ListError {
                field: "subject",
                message: "`subject` must be 1 to 256 printable characters".into(),
            });
        }
        if !text_ok(&entry.reason) {
            return Err(ListError { field: "reason", message: "every list entry needs a `reason`".into() });
        }
        if !text_ok(&entry.author) {
            return Err(ListError { field: "author", message: "every list entry needs an `author`".into() });
        }
        if entry.subject_kind == SubjectKind::Ip {
            parse_network(&entry.subject)?;
        }
        entry
            .expires_at
            .as_deref()
            .map(|t| {
                t.parse::<jiff::Timestamp>().map(|t| t.as_millisecond()).map_err(|e| ListError {
                    field: "expires_at",
                    message: format!("`expires_at` is not an RFC 3339 instant: {e}"),
                })
            })
            .transpose()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> impl Iterator<Item = &ListEntry> {
        self.entries.values()
    }

    pub fn get(&self, id: &str) -> Option<&ListEntry> {
        self.entries.get(id)
    }

    pub fn insert(&mut self, entry: ListEntry) -> Result<(), ListError> {
        if self.entries.len() >= MAX_LIST_ENTRIES && !self.entries.contains_key(&entry.id) {
            return Err(ListError {
                field: "subject",
                message: format!("the lists are full ({MAX_LIST_ENTRIES} entries)"),
            });
        }
        self.remove(&entry.id);
        match entry.subject_kind {
            SubjectKind::Ip => {
                let network = parse_network(&entry.subject)?;
                self.prefix_lengths.insert((entry.list, network.v6, network.prefix_len));
                self.networks.entry((entry.list, network)).or_default().push(entry.id.clone());
            }
            kind => {
                self.exact.entry((entry.list, kind, entry.subject.clone())).or_default().push(entry.id.clone());
            }
        }
        self.entries.insert(entry.id.clone(), entry);
        Ok(())
    }

    pub fn remove(&mut self, id: &str) -> Option<ListEntry> {
        let entry = self.entries.remove(id)?;
        let drop_id = |ids: &mut Vec<String>| ids.retain(|i| i != id);
        match entry.subject_kind {
            SubjectKind::Ip => {
                if let Ok(network) = parse_network(&entry.subject) {
                    if let Some(ids) = self.networks.get_mut(&(entry.list, network)) {
                        drop_id(ids);
                        if ids.is_empty() {
                            self.networks.remove(&(entry.list, network));
                        }
                    }
                }
            }
            kind => {
                let key = (entry.list, kind, entry.subject.clone());
                if let Some(ids) = self.exact.get_mut(&key) {
                    drop_id(ids);
                    if ids.is_empty() {
                        self.exact.remove(&key);
                    }
                }
            }
        }
        Some(entry)
    }

    fn live<'a>(&'a self, ids: Option<&'a Vec<String>>, now_ms: i64) -> Option<&'a ListEntry> {
        ids?.iter().filter_map(|id| self.entries.get(id)).find(|e| e.expires_at_ms.is_none_or(|x| now_ms < x))
    }

    /// The live entry on `list` matching the subject, if any.
    pub fn find(&self, list: ListKind, kind: SubjectKind, subject: &str, now_ms: i64) -> Option<&ListEntry> {
        if self.exact.is_empty() {
            return None;
        }
        self.live(self.exact.get(&(list, kind, subject.to_owned())), now_ms)
    }

    pub fn find_ip(&self, list: ListKind, ip: IpAddr, now_ms: i64) -> Option<&ListEntry> {
        if self.networks.is_empty() {
            return None;
        }
        let (v6, bits) = address_bits(ip);
        let mut lengths: Vec<u8> =
            self.prefix_lengths.iter().filter(|(l, six, _)| *l == list && *six == v6).map(|(_, _, p)| *p).collect();
        // Most specific network first, so the entry shown is the one that matters most.
        lengths.sort_unstable_by(|a, b| b.cmp(a));
        lengths.into_iter().find_map(|prefix_len| {
            let network = Network { v6, prefix_len, bits: mask(bits, v6, prefix_len) };
            self.live(self.networks.get(&(list, network)), now_ms)
        })
    }

    /// Every live entry on `list` that matches one of the payment's subjects.
    pub fn matches(&self, list: ListKind, subjects: &Subjects<'_>, now_ms: i64) -> Vec<&ListEntry> {
        let mut found = vec![];
        found.extend(self.find(list, SubjectKind::User, subjects.user_id, now_ms));
        if let Some(device) = subjects.device_id {
            found.extend(self.find(list, SubjectKind::Device, device, now_ms));
        }
        if let Some(ip) = subjects.ip {
            found.extend(self.find_ip(list, ip, now_ms));
        }
        found.extend(self.find(list, SubjectKind::Merchant, subjects.merchant_id, now_ms));
        found
    }
}
