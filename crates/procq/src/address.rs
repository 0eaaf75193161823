//! [`Address`]: where a queue lives. The one place that tells a
//! shared-memory name from a Redis URL, checks it, and hides its password
//! when it is shown.
//!
//! Every entry point that takes a queue's name ([`Queue::open`],
//! [`Builder::name`], [`stats`], [`remove`], the `procq` command, the
//! Python module) parses it into an `Address` first, so a name is checked
//! once, by one set of rules, before any backend sees it.
//!
//! [`Queue::open`]: crate::Queue::open
//! [`Builder::name`]: crate::Builder::name
//! [`stats`]: crate::stats
//! [`remove`]: crate::remove

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Longest queue name accepted (the kernel allows 255 bytes per file name).
pub const MAX_NAME_LEN: usize = 200;

/// URL schemes of the Redis backend (`scheme://…`).
const REDIS_SCHEMES: &[&str] = &["redis", "rediss", "redis+cluster", "rediss+cluster"];

/// Where a queue lives: a shared-memory queue on this machine, named, or a
/// queue on a Redis server, given by its URL.
///
/// Parse one with [`str::parse`]: a string that looks like a URL
/// (`scheme://…`) must be a valid Redis queue URL, anything else a valid
/// shared-memory name (see [`validate_name`]). [`Display`](fmt::Display)
/// (and `Debug`) never show a password; [`as_str`](Self::as_str) gives the
/// address as written, which is what another process needs to open the
/// queue.
///
/// ```
/// use procq::Address;
///
/// let shm: Address = "jobs".parse()?;
/// assert!(matches!(shm, Address::Shm(_)));
/// assert!("../etc/passwd".parse::<Address>().is_err());
/// assert!("ftp://host/jobs".parse::<Address>().is_err());
/// # #[cfg(feature = "redis")] {
/// let url: Address = "redis://user:secret@127.0.0.1:6379/0/jobs".parse()?;
/// assert!(matches!(url, Address::Redis(_)));
/// assert_eq!(url.to_string(), "redis://user:***@127.0.0.1:6379/0/jobs");
/// assert!(url.as_str().contains("secret"));
/// # }
/// # Ok::<(), procq::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A shared-memory queue on this machine (`/dev/shm/procq-<name>`).
    Shm(ShmName),
    /// A queue on a Redis server (needs the `redis` cargo feature to be
    /// parsed, and so to exist).
    Redis(RedisUrl),
}

/// A valid shared-memory queue name (see [`validate_name`]).
///
/// ```
/// let procq::Address::Shm(name) = "jobs".parse()? else { unreachable!() };
/// assert_eq!(name.as_str(), "jobs");
/// # Ok::<(), procq::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ShmName(String);

/// A Redis queue URL that the Redis backend accepted:
/// `redis://[user:password@]host:port/<db>/<name>[?options]`, or
/// `redis+cluster://host:port[,host:port…]/<name>[?options]` for a Redis
/// Cluster (`rediss://`, `rediss+cluster://` for TLS). Shown without its
/// password.
///
/// ```
/// # #[cfg(feature = "redis")] {
/// let procq::Address::Redis(url) = "redis://h:6379/0/jobs".parse()? else { unreachable!() };
/// assert_eq!(url.as_str(), "redis://h:6379/0/jobs");
/// # }
/// # Ok::<(), procq::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RedisUrl {
    /// The URL as written.
    url: String,
    /// Without the `redis` feature no `RedisUrl` can exist.
    #[cfg(not(feature = "redis"))]
    pub(crate) never: std::convert::Infallible,
}

/// Checks that `name` is a safe shared-memory queue name: 1 to 200
/// characters out of `[A-Za-z0-9._-]`, not starting with `.` or `-`. Names
/// become file names in `/dev/shm`, so anything that could walk out of it
/// is refused.
///
/// # Errors
///
/// [`Error::InvalidName`] saying what is wrong with `name`.
///
/// ```
/// assert!(procq::validate_name("jobs-2024.v1").is_ok());
/// assert!(procq::validate_name("../etc/passwd").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("longer than 200 bytes");
    }
    if name.starts_with('.') || name.starts_with('-') {
        return bad("starts with '.' or '-'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// The scheme of `text` if it is written as a URL (`scheme://…`).
fn scheme_of(text: &str) -> Option<&str> {
    let (scheme, _) = text.split_once("://")?;
    let valid = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    valid.then_some(scheme)
}

/// `text` with the password of a `scheme://user:password@host…` URL
/// replaced by `***`; anything else as it is.
fn redact(text: &str) -> Cow<'_, str> {
    let Some((scheme, rest)) = text.split_once("://") else {
        return Cow::Borrowed(text);
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            Cow::Owned(format!("{scheme}://{user}:***{}", &rest[at..]))
        }
        None => Cow::Borrowed(text),
    }
}

impl Address {
    /// The address as written: a name, or the full URL, password included
    /// (what another process needs to open the queue; show it with
    /// `Display` instead).
    ///
    /// ```
    /// let a: procq::Address = "jobs".parse()?;
    /// assert_eq!(a.as_str(), "jobs");
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn as_str(&self) -> &str {
        match self {
            Address::Shm(n) => n.as_str(),
            Address::Redis(u) => u.as_str(),
        }
    }

    /// Whether `text` is written as a URL of a queue server
    /// (`redis://…`, `rediss://…`) rather than a shared-memory name. Only
    /// the scheme is looked at: a valid queue URL also parses as an
    /// [`Address`], a server URL (`redis://host:6379/0`, as
    /// `procq::list_redis` takes) does not.
    ///
    /// ```
    /// assert!(procq::Address::is_url("redis://127.0.0.1:6379/0"));
    /// assert!(!procq::Address::is_url("jobs"));
    /// ```
    pub fn is_url(text: &str) -> bool {
        scheme_of(text).is_some_and(|s| REDIS_SCHEMES.contains(&s))
    }

    /// `text` fit to show: the password of a URL (a queue's or a server's)
    /// replaced by `***`, anything else unchanged. For strings that may not
    /// parse; an [`Address`] shows itself this way.
    ///
    /// ```
    /// assert_eq!(
    ///     procq::Address::redact("redis://me:pw@h:6379/0"),
    ///     "redis://me:***@h:6379/0"
    /// );
    /// assert_eq!(procq::Address::redact("jobs"), "jobs");
    /// ```
    pub fn redact(text: &str) -> Cow<'_, str> {
        redact(text)
    }

    /// The shared-memory address of a queue this process already holds.
    pub(crate) fn shm_unchecked(name: &str) -> Address {
        Address::Shm(ShmName(name.to_owned()))
    }

    /// The Redis address of a queue this process already holds.
    #[cfg(feature = "redis")]
    pub(crate) fn redis_unchecked(url: &str) -> Address {
        Address::Redis(RedisUrl {
            url: url.to_owned(),
        })
    }
}

impl FromStr for Address {
    type Err = Error;

    /// Recognises and checks an address (see [`Address`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a name or URL that is not valid (shown
    /// without its password), or a Redis URL when procq was built without
    /// the `redis` feature.
    fn from_str(text: &str) -> Result<Address> {
        let Some(scheme) = scheme_of(text) else {
            validate_name(text)?;
            return Ok(Address::Shm(ShmName(text.to_owned())));
        };
        if !REDIS_SCHEMES.contains(&scheme) {
            return Err(Error::InvalidName {
                name: redact(text).into_owned(),
                reason: "unknown URL scheme: a queue is a name or a redis://, rediss://, redis+cluster:// or rediss+cluster:// URL",
            });
        }
        #[cfg(feature = "redis")]
        {
            crate::backend::redis::Target::parse(text)?;
            Ok(Address::Redis(RedisUrl {
                url: text.to_owned(),
            }))
        }
        #[cfg(not(feature = "redis"))]
        Err(Error::InvalidName {
            name: redact(text).into_owned(),
            reason: "redis:// URLs need procq's `redis` cargo feature",
        })
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Shm(n) => n.fmt(f),
            Address::Redis(u) => u.fmt(f),
        }
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Shm(n) => f.debug_tuple("Shm").field(n).finish(),
            Address::Redis(u) => f.debug_tuple("Redis").field(u).finish(),
        }
    }
}

impl ShmName {
    /// The name.
    ///
    /// ```
    /// let procq::Address::Shm(n) = "jobs".parse()? else { unreachable!() };
    /// assert_eq!(n.as_str(), "jobs");
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl RedisUrl {
    /// The URL as written, password included.
    ///
    /// ```
    /// # #[cfg(feature = "redis")] {
    /// let procq::Address::Redis(u) = "redis://:pw@h:1/0/q".parse()? else { unreachable!() };
    /// assert_eq!(u.as_str(), "redis://:pw@h:1/0/q");
    /// # }
    /// # Ok::<(), procq::Error>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.url
    }
}

impl fmt::Display for ShmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ShmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.url))
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*redact(&self.url), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_urls_are_told_apart_once() {
        assert!(matches!("jobs".parse::<Address>(), Ok(Address::Shm(_))));
        for bad in ["", ".x", "-x", "a/b", "../x", "a b", &"x".repeat(201)] {
            assert!(
                matches!(bad.parse::<Address>(), Err(Error::InvalidName { .. })),
                "{bad:?}"
            );
        }
        // Anything written as a URL is judged as one, never as a name.
        for other in ["http://h/q", "mysql://u:pw@h/q", "redis+sentinel://h/q"] {
            let e = other.parse::<Address>().unwrap_err();
            assert!(e.to_string().contains("unknown URL scheme"), "{e}");
            assert!(!e.to_string().contains(":pw@"), "{e}");
        }
        assert!(Address::is_url("redis://h:1/0"));
        assert!(Address::is_url("rediss://h:1/0/q"));
        assert!(Address::is_url("redis+cluster://h:1,h:2/q"));
        assert!(Address::is_url("rediss+cluster://h:1/q"));
        assert!(!Address::is_url("jobs"));
        assert!(!Address::is_url("http://h/q"));
    }

    #[test]
    fn passwords_never_show() {
        for (url, shown) in [
            ("redis://u:pw@h:1/0/q", "redis://u:***@h:1/0/q"),
            ("redis://:pw@h:1/0/q", "redis://:***@h:1/0/q"),
            ("rediss://u:p@ss@h:1/0", "rediss://u:***@h:1/0"),
            ("redis://h:1/0/q?x=a@b", "redis://h:1/0/q?x=a@b"),
            ("jobs", "jobs"),
        ] {
            assert_eq!(Address::redact(url), shown, "{url}");
        }
    }

    #[cfg(feature = "redis")]
    #[test]
    fn the_redis_backend_redacts_by_the_same_rule() {
        for url in [
            "redis://u:pw@h:1/0/q",
            "redis://:pw@h:1/0/q",
            "rediss://u:p@ss@h:1/0",
            "redis://h:1/0/q?x=a@b",
            "redis+cluster://u:pw@h:1,h:2/q?password_env=X",
            "redis://h:1/0/q",
            "jobs",
        ] {
            assert_eq!(crate::backend::redis::url::redact(url), redact(url));
        }
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_urls_are_checked_and_shown_without_password() {
        let a: Address = "redis://u:hunter2@127.0.0.1:6379/0/jobs".parse().unwrap();
        assert!(matches!(a, Address::Redis(_)));
        assert!(!a.to_string().contains("hunter2"));
        assert!(!format!("{a:?}").contains("hunter2"));
        assert!(a.as_str().contains("hunter2"));
        let e = "redis://u:hunter2@127.0.0.1:6379/jobs"
            .parse::<Address>()
            .unwrap_err();
        assert!(matches!(e, Error::InvalidName { .. }), "{e:?}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[cfg(not(feature = "redis"))]
    #[test]
    fn redis_urls_need_the_feature() {
        let e = "redis://u:hunter2@h:1/0/q".parse::<Address>().unwrap_err();
        assert!(e.to_string().contains("`redis` cargo feature"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
