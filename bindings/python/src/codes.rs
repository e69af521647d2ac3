//! `fleetwire.codes`: thing codes and thing access (fleetwire-codes), as conversions only.
//! Wall-clock time crosses as unix milliseconds; the generator's randomness as a 32-byte seed.

use fleetwire_codes as fc;
use fleetwire_codes::UnixTime;
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use rand_chacha::ChaCha12Rng;
use rand_core::SeedableRng;

use crate::{ApiMisuse, FleetwireError, ParseError, array};

create_exception!(
    fleetwire,
    CodesError,
    FleetwireError,
    "A thing-code operation failed (other than parsing, which raises `ParseError`)."
);
create_exception!(
    fleetwire,
    AccessDenied,
    CodesError,
    "A thing-access operation was refused; `kind` names the reason (`wrong_code`, ...)."
);

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("CodesError", py.get_type::<CodesError>())?;
    m.add("AccessDenied", py.get_type::<AccessDenied>())?;
    m.add_class::<CodeSpec>()?;
    m.add_class::<Code>()?;
    m.add_class::<CodeGenerator>()?;
    m.add_class::<AuditEvent>()?;
    m.add_class::<ThingAccess>()?;
    Ok(())
}

/// A parse failure as `fleetwire.ParseError` with `kind` (the core variant name, e.g.
/// `CheckMismatch`) and, where the variant has them, `position`, `expected`, `found`.
fn parse_error(py: Python<'_>, e: &fc::ParseError) -> PyErr {
    let err = ParseError::new_err(e.to_string());
    let v = err.value(py);
    // Setting attributes on a fresh exception instance cannot fail in practice.
    let (kind, position, expected, found) = match e {
        fc::ParseError::Empty => ("Empty".to_owned(), None, None, None),
        fc::ParseError::TooLong { .. } => ("TooLong".to_owned(), None, None, None),
        fc::ParseError::InvalidCharacter { position, .. } => {
            ("InvalidCharacter".to_owned(), Some(*position), None, None)
        }
        fc::ParseError::WrongLength { expected, found } => (
            "WrongLength".to_owned(),
            None,
            Some(*expected),
            Some(*found),
        ),
        fc::ParseError::CheckMismatch => ("CheckMismatch".to_owned(), None, None, None),
        other => (format!("{other:?}"), None, None, None),
    };
    let _ = v.setattr("kind", kind);
    let _ = v.setattr("position", position);
    let _ = v.setattr("expected", expected);
    let _ = v.setattr("found", found);
    err
}

fn access_error(py: Python<'_>, e: &fc::AccessError) -> PyErr {
    let err = AccessDenied::new_err(e.to_string());
    let kind = match e {
        fc::AccessError::WrongCode => "wrong_code",
        fc::AccessError::CodeExpired { .. } => "code_expired",
        fc::AccessError::InviteRequired { .. } => "invite_required",
        fc::AccessError::InviteExpired { .. } => "invite_expired",
        fc::AccessError::Blocked { .. } => "blocked",
        fc::AccessError::NotAdministrator { .. } => "not_administrator",
        fc::AccessError::NotMember { .. } => "not_member",
        fc::AccessError::AlreadyMember { .. } => "already_member",
        fc::AccessError::LastAdministrator { .. } => "last_administrator",
        fc::AccessError::NoPendingRequest { .. } => "no_pending_request",
        fc::AccessError::NoInvite { .. } => "no_invite",
        fc::AccessError::NotBlocked { .. } => "not_blocked",
        fc::AccessError::CodeUnchanged => "code_unchanged",
        _ => "other",
    };
    let _ = err.value(py).setattr("kind", kind);
    err
}

fn mode_in(mode: &str) -> PyResult<fc::AccessMode> {
    match mode {
        "open" => Ok(fc::AccessMode::Open),
        "admin_confirm" => Ok(fc::AccessMode::AdminConfirm),
        "invite_only" => Ok(fc::AccessMode::InviteOnly),
        other => Err(PyValueError::new_err(format!(
            "mode must be 'open', 'admin_confirm' or 'invite_only', got {other:?}"
        ))),
    }
}

fn mode_out(mode: fc::AccessMode) -> &'static str {
    match mode {
        fc::AccessMode::Open => "open",
        fc::AccessMode::AdminConfirm => "admin_confirm",
        fc::AccessMode::InviteOnly => "invite_only",
    }
}

fn role_out(role: fc::Role) -> &'static str {
    match role {
        fc::Role::Member => "member",
        fc::Role::Administrator => "administrator",
    }
}

fn t(ms: u64) -> UnixTime {
    UnixTime::from_millis(ms)
}

fn t_opt(ms: Option<u64>) -> Option<UnixTime> {
    ms.map(UnixTime::from_millis)
}

/// Alphabet, length and check character of a code. Defaults: `0-9A-Z`, 10 symbols, a Damm
/// check character.
#[pyclass(module = "fleetwire.codes", frozen)]
pub(crate) struct CodeSpec {
    inner: fc::CodeSpec,
}

#[pymethods]
impl CodeSpec {
    /// Raises `ApiMisuse` for an alphabet or length the crate does not allow.
    #[new]
    #[pyo3(signature = (alphabet = None, length = None, check = true))]
    fn new(alphabet: Option<&str>, length: Option<usize>, check: bool) -> PyResult<Self> {
        let default = fc::CodeSpec::default();
        let alphabet = match alphabet {
            Some(a) => fc::Alphabet::new(a).map_err(|e| ApiMisuse::new_err(e.to_string()))?,
            None => default.alphabet().clone(),
        };
        let inner = fc::CodeSpec::new(alphabet, length.unwrap_or(default.length()), check)
            .map_err(|e| ApiMisuse::new_err(e.to_string()))?;
        Ok(Self { inner })
    }

    /// Reads what a person typed (case, spaces, dashes and look-alikes forgiven); raises
    /// `fleetwire.ParseError` with `kind`.
    fn parse(&self, py: Python<'_>, input: &str) -> PyResult<Code> {
        self.inner
            .parse(input)
            .map(|inner| Code { inner })
            .map_err(|e| parse_error(py, &e))
    }

    /// The check character for `body`, or `None` if the body is not valid for this spec (or
    /// the spec has no check character).
    fn check_character(&self, body: &str) -> Option<char> {
        self.inner.check_character(body)
    }

    #[getter]
    fn alphabet(&self) -> String {
        self.inner.alphabet().as_str().to_owned()
    }

    /// Random symbols (without the check character).
    #[getter]
    fn length(&self) -> usize {
        self.inner.length()
    }

    #[getter]
    fn has_check(&self) -> bool {
        self.inner.has_check()
    }

    /// Symbols in a code, check character included.
    #[getter]
    fn code_len(&self) -> usize {
        self.inner.code_len()
    }

    #[getter]
    fn combinations(&self) -> u64 {
        self.inner.combinations()
    }

    #[getter]
    fn entropy_bits(&self) -> f64 {
        self.inner.entropy_bits()
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

/// A parsed or generated code. `str(code)` is the grouped display form (`ABCDE-FGHIJ`),
/// `canonical` the bare symbols.
#[pyclass(module = "fleetwire.codes", frozen, eq, hash, str, from_py_object)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Code {
    inner: fc::Code,
}

#[pymethods]
impl Code {
    #[getter]
    fn canonical(&self) -> String {
        self.inner.as_str().to_owned()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

/// Unbiased codes from `ChaCha12` seeded with the caller's 32 bytes (`secrets.token_bytes(32)`;
/// a fixed seed replays). Uniqueness is the caller's: retry on a collision in your store.
#[pyclass(module = "fleetwire.codes")]
pub(crate) struct CodeGenerator {
    inner: fc::CodeGenerator<ChaCha12Rng>,
}

#[pymethods]
impl CodeGenerator {
    #[new]
    fn new(spec: &CodeSpec, seed: &[u8]) -> PyResult<Self> {
        let rng = ChaCha12Rng::from_seed(array("seed", seed)?);
        Ok(Self {
            inner: fc::CodeGenerator::new(spec.inner.clone(), rng),
        })
    }

    /// The next code.
    fn generate(&mut self) -> PyResult<Code> {
        self.inner
            .generate()
            .map(|inner| Code { inner })
            .map_err(|e| CodesError::new_err(e.to_string()))
    }
}

/// One audit-trail entry: `at_ms`, the acting user, `kind` (the core variant name, e.g.
/// `Claimed`, `Approved`, `Denied`) and `description` (its full Debug form).
#[pyclass(module = "fleetwire.codes", frozen, get_all)]
pub(crate) struct AuditEvent {
    at_ms: u64,
    actor: u64,
    kind: String,
    description: String,
}

#[pymethods]
impl AuditEvent {
    fn __repr__(&self) -> String {
        format!(
            "AuditEvent(at_ms={}, actor={}, {})",
            self.at_ms, self.actor, self.description
        )
    }
}

/// Who may use one thing. `mode` is `open`, `admin_confirm` or `invite_only`; users are
/// integers; times are unix ms. Refusals raise `AccessDenied` and are audited.
#[pyclass(module = "fleetwire.codes")]
pub(crate) struct ThingAccess {
    inner: fc::ThingAccess,
}

#[pymethods]
impl ThingAccess {
    #[new]
    fn new(code: &Code, mode: &str) -> PyResult<Self> {
        Ok(Self {
            inner: fc::ThingAccess::new(code.inner, mode_in(mode)?),
        })
    }

    /// A user presents the code: `became_administrator`, `joined`, `already_member` or
    /// `request_pending`.
    fn connect(&mut self, py: Python<'_>, now_ms: u64, user: u64, code: &Code) -> PyResult<String> {
        let r = self
            .inner
            .connect(t(now_ms), fc::UserId(user), &code.inner)
            .map_err(|e| access_error(py, &e))?;
        Ok(match r {
            fc::Connected::BecameAdministrator => "became_administrator".into(),
            fc::Connected::Joined => "joined".into(),
            fc::Connected::AlreadyMember(_) => "already_member".into(),
            fc::Connected::RequestPending => "request_pending".into(),
        })
    }

    fn approve(&mut self, py: Python<'_>, now_ms: u64, admin: u64, user: u64) -> PyResult<()> {
        self.inner
            .approve(t(now_ms), fc::UserId(admin), fc::UserId(user))
            .map_err(|e| access_error(py, &e))
    }

    fn reject(&mut self, py: Python<'_>, now_ms: u64, admin: u64, user: u64) -> PyResult<()> {
        self.inner
            .reject(t(now_ms), fc::UserId(admin), fc::UserId(user))
            .map_err(|e| access_error(py, &e))
    }

    #[pyo3(signature = (now_ms, admin, user, expires_at_ms = None))]
    fn invite(
        &mut self,
        py: Python<'_>,
        now_ms: u64,
        admin: u64,
        user: u64,
        expires_at_ms: Option<u64>,
    ) -> PyResult<()> {
        self.inner
            .invite(
                t(now_ms),
                fc::UserId(admin),
                fc::UserId(user),
                t_opt(expires_at_ms),
            )
            .map_err(|e| access_error(py, &e))
    }

    fn cancel_invite(
        &mut self,
        py: Python<'_>,
        now_ms: u64,
        admin: u64,
        user: u64,
    ) -> PyResult<()> {
        self.inner
            .cancel_invite(t(now_ms), fc::UserId(admin), fc::UserId(user))
            .map_err(|e| access_error(py, &e))
    }

    fn grant_admin(&mut self, py: Python<'_>, now_ms: u64, admin: u64, user: u64) -> PyResult<()> {
        self.inner
            .grant_admin(t(now_ms), fc::UserId(admin), fc::UserId(user))
            .map_err(|e| access_error(py, &e))
    }

    fn revoke_admin(&mut self, py: Python<'_>, now_ms: u64, admin: u64, user: u64) -> PyResult<()> {
        self.inner
            .revoke_admin(t(now_ms), fc::UserId(admin), fc::UserId(user))
            .map_err(|e| access_error(py, &e))
    }

    /// An administrator removes (and blocks) `user`, or a user leaves (`actor == user`).
    fn remove(&mut self, py: Python<'_>, now_ms: u64, actor: u64, user: u64) -> PyResult<()> {
        self.inner
            .remove(t(now_ms), fc::UserId(actor), fc::UserId(user))
            .map_err(|e| access_error(py, &e))
    }

    fn unblock(&mut self, py: Python<'_>, now_ms: u64, admin: u64, user: u64) -> PyResult<()> {
        self.inner
            .unblock(t(now_ms), fc::UserId(admin), fc::UserId(user))
            .map_err(|e| access_error(py, &e))
    }

    fn set_mode(&mut self, py: Python<'_>, now_ms: u64, admin: u64, mode: &str) -> PyResult<()> {
        self.inner
            .set_mode(t(now_ms), fc::UserId(admin), mode_in(mode)?)
            .map_err(|e| access_error(py, &e))
    }

    #[pyo3(signature = (now_ms, admin, code, expires_at_ms = None))]
    fn rotate_code(
        &mut self,
        py: Python<'_>,
        now_ms: u64,
        admin: u64,
        code: &Code,
        expires_at_ms: Option<u64>,
    ) -> PyResult<()> {
        self.inner
            .rotate_code(
                t(now_ms),
                fc::UserId(admin),
                code.inner,
                t_opt(expires_at_ms),
            )
            .map_err(|e| access_error(py, &e))
    }

    fn set_code_expiry(
        &mut self,
        py: Python<'_>,
        now_ms: u64,
        admin: u64,
        expires_at_ms: Option<u64>,
    ) -> PyResult<()> {
        self.inner
            .set_code_expiry(t(now_ms), fc::UserId(admin), t_opt(expires_at_ms))
            .map_err(|e| access_error(py, &e))
    }

    /// The next audit event, or `None`.
    fn poll_event(&mut self) -> Option<AuditEvent> {
        self.inner.poll_event().map(|e| {
            let description = format!("{:?}", e.kind);
            let kind = description
                .split([' ', '{', '('])
                .next()
                .unwrap_or_default()
                .to_owned();
            AuditEvent {
                at_ms: e.at.as_millis(),
                actor: e.actor.0,
                kind,
                description,
            }
        })
    }

    #[getter]
    fn code(&self) -> Code {
        Code {
            inner: *self.inner.code(),
        }
    }

    #[getter]
    fn mode(&self) -> &'static str {
        mode_out(self.inner.mode())
    }

    #[getter]
    fn code_expires_at_ms(&self) -> Option<u64> {
        self.inner.code_expires_at().map(UnixTime::as_millis)
    }

    /// `member`, `administrator` or `None`.
    fn role(&self, user: u64) -> Option<&'static str> {
        self.inner.role(fc::UserId(user)).map(role_out)
    }

    fn has_access(&self, user: u64) -> bool {
        self.inner.has_access(fc::UserId(user))
    }

    fn is_administrator(&self, user: u64) -> bool {
        self.inner.is_administrator(fc::UserId(user))
    }

    fn is_blocked(&self, user: u64) -> bool {
        self.inner.is_blocked(fc::UserId(user))
    }

    #[getter]
    fn is_claimed(&self) -> bool {
        self.inner.is_claimed()
    }

    /// `(user, role)` pairs in user order.
    fn members(&self) -> Vec<(u64, &'static str)> {
        self.inner
            .members()
            .map(|(u, r)| (u.0, role_out(r)))
            .collect()
    }

    /// `(user, requested_at_ms)` pairs.
    fn pending_requests(&self) -> Vec<(u64, u64)> {
        self.inner
            .pending_requests()
            .map(|(u, at)| (u.0, at.as_millis()))
            .collect()
    }
}
