//! `fleetwire.auth`: password policy, Argon2id hashing, lockout and TOTP (fleetwire-auth), as
//! conversions only. Wall-clock time crosses as integer unix milliseconds (`UnixTime`);
//! randomness crosses as bytes (salts, TOTP secrets, the lockout key) chosen by the caller.

use fleetwire_auth as fa;
use fleetwire_auth::UnixTime;
use fleetwire_auth::hash::HashError as CoreHashError;
use fleetwire_auth::lockout::{self as lo, LockoutKey};
use fleetwire_auth::totp::{TotpAlgorithm, TotpError};
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::{ApiMisuse, FleetwireError, array};

create_exception!(
    fleetwire,
    AuthError,
    FleetwireError,
    "An account-security check refused: a password, hash, one-time code or lockout."
);
create_exception!(
    fleetwire,
    PolicyRejected,
    AuthError,
    "A password broke the policy; `violations` holds every `Violation`."
);
create_exception!(
    fleetwire,
    HashError,
    AuthError,
    "A stored hash could not be used (malformed, other algorithm, parameters out of range)."
);
create_exception!(
    fleetwire,
    PasswordMismatch,
    HashError,
    "The password does not match (or the user is unknown: the two are indistinguishable)."
);
create_exception!(
    fleetwire,
    TotpRejected,
    AuthError,
    "A one-time code is not valid now."
);
create_exception!(
    fleetwire,
    TotpReplayed,
    TotpRejected,
    "A one-time code was already used."
);
create_exception!(
    fleetwire,
    Locked,
    AuthError,
    "Too many failed attempts; `until_ms` is when attempts are accepted again (None: until cleared)."
);

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("AuthError", py.get_type::<AuthError>())?;
    m.add("PolicyRejected", py.get_type::<PolicyRejected>())?;
    m.add("HashError", py.get_type::<HashError>())?;
    m.add("PasswordMismatch", py.get_type::<PasswordMismatch>())?;
    m.add("TotpRejected", py.get_type::<TotpRejected>())?;
    m.add("TotpReplayed", py.get_type::<TotpReplayed>())?;
    m.add("Locked", py.get_type::<Locked>())?;
    m.add(
        "NIST_MAX_CONSECUTIVE_FAILURES",
        lo::NIST_MAX_CONSECUTIVE_FAILURES,
    )?;
    m.add_class::<Violation>()?;
    m.add_class::<PasswordPolicy>()?;
    m.add_class::<HashParams>()?;
    m.add_class::<PasswordHasher>()?;
    m.add_class::<Totp>()?;
    m.add_class::<LockoutConfig>()?;
    m.add_class::<LockoutEngine>()?;
    m.add_class::<AttemptTicket>()?;
    m.add_class::<LockStatus>()?;
    m.add_function(wrap_pyfunction!(normalize, m)?)?;
    Ok(())
}

fn hash_error(e: &CoreHashError) -> PyErr {
    match e {
        CoreHashError::Mismatch => PasswordMismatch::new_err(e.to_string()),
        _ => HashError::new_err(e.to_string()),
    }
}

fn totp_error(e: &TotpError) -> PyErr {
    match e {
        TotpError::Replayed => TotpReplayed::new_err(e.to_string()),
        TotpError::BadParameters => PyValueError::new_err(e.to_string()),
        _ => TotpRejected::new_err(e.to_string()),
    }
}

fn locked_error(py: Python<'_>, l: lo::Locked) -> PyErr {
    let err = Locked::new_err(l.to_string());
    // Setting an attribute on a fresh exception instance cannot fail in practice.
    let _ = err
        .value(py)
        .setattr("until_ms", l.until.map(UnixTime::as_millis));
    err
}

fn misuse(e: &impl std::fmt::Display) -> PyErr {
    ApiMisuse::new_err(e.to_string())
}

/// NFKC normalization, applied to every password before it is checked or hashed.
#[pyfunction]
fn normalize(password: &str) -> String {
    fa::policy::normalize(password)
}

// ---------------------------------------------------------------------------------------------
// Policy

/// One reason a password was rejected. `kind` is `too_short`, `too_long`, `missing_digit`,
/// `missing_upper_case`, `missing_lower_case`, `missing_symbol`, `control_character`,
/// `common` or `contains_context_word`; `message` is the text to show.
#[pyclass(module = "fleetwire.auth", frozen, eq, get_all)]
#[derive(Clone, PartialEq)]
pub(crate) struct Violation {
    kind: String,
    /// The minimum that applies (`too_short`).
    min: Option<u32>,
    /// The maximum (`too_long`).
    max: Option<u32>,
    /// The password's length in code points after NFKC (`too_short`, `too_long`).
    actual: Option<u32>,
    /// The offending word, lower-cased (`contains_context_word`).
    word: Option<String>,
    message: String,
}

#[pymethods]
impl Violation {
    fn __repr__(&self) -> String {
        format!("Violation({:?}: {})", self.kind, self.message)
    }

    fn __str__(&self) -> String {
        self.message.clone()
    }
}

impl From<&fa::policy::Violation> for Violation {
    fn from(v: &fa::policy::Violation) -> Self {
        use fa::policy::Violation as V;
        let mut out = Self {
            kind: String::new(),
            min: None,
            max: None,
            actual: None,
            word: None,
            message: v.to_string(),
        };
        out.kind = match v {
            V::TooShort { min, actual } => {
                out.min = Some(*min);
                out.actual = Some(*actual);
                "too_short".into()
            }
            V::TooLong { max, actual } => {
                out.max = Some(*max);
                out.actual = Some(*actual);
                "too_long".into()
            }
            V::MissingDigit => "missing_digit".into(),
            V::MissingUpperCase => "missing_upper_case".into(),
            V::MissingLowerCase => "missing_lower_case".into(),
            V::MissingSymbol => "missing_symbol".into(),
            V::ControlCharacter => "control_character".into(),
            V::Common => "common".into(),
            V::ContainsContextWord { word } => {
                out.word = Some(word.clone());
                "contains_context_word".into()
            }
            other => format!("{other:?}"),
        };
        out
    }
}

/// Password rules. Build with `seed()` or `nist()` and adjust the fields, or pass them all.
#[pyclass(module = "fleetwire.auth", eq, get_all, set_all, from_py_object)]
#[derive(Clone, PartialEq)]
#[allow(clippy::struct_excessive_bools)] // mirrors the core policy's fields
pub(crate) struct PasswordPolicy {
    min_chars: u32,
    min_chars_with_mfa: u32,
    max_chars: u32,
    require_digit: bool,
    require_upper: bool,
    require_lower: bool,
    require_symbol: bool,
    use_blocklist: bool,
    reject_context_words: bool,
}

#[pymethods]
impl PasswordPolicy {
    #[new]
    #[pyo3(signature = (*, min_chars, min_chars_with_mfa, max_chars, require_digit = false, require_upper = false, require_lower = false, require_symbol = false, use_blocklist = false, reject_context_words = false))]
    #[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)]
    fn new(
        min_chars: u32,
        min_chars_with_mfa: u32,
        max_chars: u32,
        require_digit: bool,
        require_upper: bool,
        require_lower: bool,
        require_symbol: bool,
        use_blocklist: bool,
        reject_context_words: bool,
    ) -> PyResult<Self> {
        let p = Self {
            min_chars,
            min_chars_with_mfa,
            max_chars,
            require_digit,
            require_upper,
            require_lower,
            require_symbol,
            use_blocklist,
            reject_context_words,
        };
        p.to_core().validate().map_err(|e| misuse(&e))?;
        Ok(p)
    }

    /// The sensor-cloud rule: at least 8 characters, a digit and an upper-case letter.
    #[staticmethod]
    fn seed() -> Self {
        Self::from_core(&fa::policy::PasswordPolicy::seed())
    }

    /// NIST SP 800-63B rev 4: 15 characters (8 with MFA), blocklist and context words.
    #[staticmethod]
    fn nist() -> Self {
        Self::from_core(&fa::policy::PasswordPolicy::nist())
    }

    /// Raises `ApiMisuse` if the fields contradict each other.
    fn validate(&self) -> PyResult<()> {
        self.to_core().validate().map_err(|e| misuse(&e))
    }

    /// Every violation, in a stable order; empty means accepted. `words` are context words
    /// (user name, e-mail, service name).
    #[pyo3(signature = (password, words = Vec::new(), has_mfa = false))]
    fn check(&self, password: &str, words: Vec<String>, has_mfa: bool) -> Vec<Violation> {
        let ctx = fa::policy::PolicyContext { words, has_mfa };
        self.to_core()
            .check(password, &ctx)
            .iter()
            .map(Violation::from)
            .collect()
    }

    /// The normalized password, ready to hash; raises `PolicyRejected` (with `violations`).
    #[pyo3(signature = (password, words = Vec::new(), has_mfa = false))]
    fn accept(
        &self,
        py: Python<'_>,
        password: &str,
        words: Vec<String>,
        has_mfa: bool,
    ) -> PyResult<String> {
        let ctx = fa::policy::PolicyContext { words, has_mfa };
        match self.to_core().accept(password, &ctx) {
            Ok(p) => Ok(p.as_str().to_owned()),
            Err(violations) => {
                let text: Vec<String> = violations.iter().map(ToString::to_string).collect();
                let err = PolicyRejected::new_err(text.join("; "));
                let list: Vec<Violation> = violations.iter().map(Violation::from).collect();
                err.value(py)
                    .setattr("violations", PyList::new(py, list)?)?;
                Err(err)
            }
        }
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.to_core())
    }
}

impl PasswordPolicy {
    fn to_core(&self) -> fa::policy::PasswordPolicy {
        let mut p = fa::policy::PasswordPolicy::seed();
        p.min_chars = self.min_chars;
        p.min_chars_with_mfa = self.min_chars_with_mfa;
        p.max_chars = self.max_chars;
        p.require_digit = self.require_digit;
        p.require_upper = self.require_upper;
        p.require_lower = self.require_lower;
        p.require_symbol = self.require_symbol;
        p.use_blocklist = self.use_blocklist;
        p.reject_context_words = self.reject_context_words;
        p
    }

    fn from_core(p: &fa::policy::PasswordPolicy) -> Self {
        Self {
            min_chars: p.min_chars,
            min_chars_with_mfa: p.min_chars_with_mfa,
            max_chars: p.max_chars,
            require_digit: p.require_digit,
            require_upper: p.require_upper,
            require_lower: p.require_lower,
            require_symbol: p.require_symbol,
            use_blocklist: p.use_blocklist,
            reject_context_words: p.reject_context_words,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hashing

/// Argon2id cost parameters (memory in KiB, passes, lanes, hash and salt lengths in bytes).
#[pyclass(module = "fleetwire.auth", eq, get_all, set_all, from_py_object)]
#[derive(Clone, Copy, PartialEq)]
pub(crate) struct HashParams {
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    output_len: u32,
    salt_len: u32,
}

#[pymethods]
impl HashParams {
    #[new]
    #[pyo3(signature = (m_cost_kib, t_cost, p_cost, output_len = 32, salt_len = 16))]
    fn new(m_cost_kib: u32, t_cost: u32, p_cost: u32, output_len: u32, salt_len: u32) -> Self {
        Self {
            m_cost_kib,
            t_cost,
            p_cost,
            output_len,
            salt_len,
        }
    }

    /// OWASP's defaults: m = 19 MiB, t = 2, p = 1.
    #[staticmethod]
    fn owasp() -> Self {
        fa::hash::HashParams::owasp().into()
    }

    /// Cheap parameters (m = 64 KiB, t = 1) for tests only.
    #[staticmethod]
    fn danger_insecure_for_tests() -> Self {
        fa::hash::HashParams::danger_insecure_for_tests().into()
    }

    fn __repr__(&self) -> String {
        format!("{:?}", fa::hash::HashParams::from(*self))
    }
}

impl From<fa::hash::HashParams> for HashParams {
    fn from(p: fa::hash::HashParams) -> Self {
        Self {
            m_cost_kib: p.m_cost_kib,
            t_cost: p.t_cost,
            p_cost: p.p_cost,
            output_len: p.output_len,
            salt_len: p.salt_len,
        }
    }
}

impl From<HashParams> for fa::hash::HashParams {
    fn from(p: HashParams) -> Self {
        Self {
            m_cost_kib: p.m_cost_kib,
            t_cost: p.t_cost,
            p_cost: p.p_cost,
            output_len: p.output_len,
            salt_len: p.salt_len,
        }
    }
}

/// Argon2id PHC hashing with fixed current parameters and an optional pepper. Hashing takes
/// the salt from the caller (`secrets.token_bytes(16)`).
#[pyclass(module = "fleetwire.auth", frozen)]
pub(crate) struct PasswordHasher {
    inner: fa::hash::PasswordHasher,
}

#[pymethods]
impl PasswordHasher {
    /// `params` defaults to `HashParams.owasp()`.
    #[new]
    #[pyo3(signature = (params = None, pepper = None))]
    fn new(params: Option<HashParams>, pepper: Option<&[u8]>) -> PyResult<Self> {
        let params = params.map_or_else(fa::hash::HashParams::owasp, Into::into);
        let inner = match pepper {
            Some(p) => fa::hash::PasswordHasher::with_pepper(params, p),
            None => fa::hash::PasswordHasher::new(params),
        }
        .map_err(|e| hash_error(&e))?;
        Ok(Self { inner })
    }

    #[getter]
    fn params(&self) -> HashParams {
        self.inner.params().into()
    }

    /// The PHC string of `password` with this salt (8 to 64 bytes). Releases the GIL.
    fn hash(&self, py: Python<'_>, password: &str, salt: &[u8]) -> PyResult<String> {
        py.detach(|| self.inner.hash_with_salt(password, salt))
            .map_err(|e| hash_error(&e))
    }

    /// Verifies `password` against a stored PHC string; returns `needs_rehash`. Raises
    /// `PasswordMismatch` or `HashError`. Releases the GIL.
    fn verify(&self, py: Python<'_>, password: &str, phc: &str) -> PyResult<bool> {
        py.detach(|| self.inner.verify(password, phc))
            .map(|v| v.needs_rehash)
            .map_err(|e| hash_error(&e))
    }

    /// The work of a verification against a dummy hash; always raises `PasswordMismatch` (or
    /// `HashError` for an over-long password). Call it when the user name is unknown.
    fn verify_unknown_user(&self, py: Python<'_>, password: &str) -> PyResult<()> {
        Err(hash_error(
            &py.detach(|| self.inner.verify_unknown_user(password)),
        ))
    }

    /// Whether a stored PHC string should be replaced by a hash with the current parameters.
    fn needs_rehash(&self, phc: &str) -> bool {
        self.inner.needs_rehash(phc)
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

// ---------------------------------------------------------------------------------------------
// TOTP

/// RFC 6238 one-time passwords. `algorithm` is `sha1`, `sha256` or `sha512`.
#[pyclass(module = "fleetwire.auth")]
pub(crate) struct Totp {
    inner: fa::totp::Totp,
}

#[pymethods]
impl Totp {
    /// `secret` is 16 to 128 random bytes (`secrets.token_bytes(20)`).
    #[new]
    #[pyo3(signature = (secret, algorithm = "sha1", digits = 6, step_secs = 30))]
    fn new(secret: &[u8], algorithm: &str, digits: u8, step_secs: u64) -> PyResult<Self> {
        let alg = match algorithm.to_ascii_lowercase().as_str() {
            "sha1" => TotpAlgorithm::Sha1,
            "sha256" => TotpAlgorithm::Sha256,
            "sha512" => TotpAlgorithm::Sha512,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown TOTP algorithm {other:?}: use sha1, sha256 or sha512"
                )));
            }
        };
        let inner = fa::totp::Totp::new(secret.to_vec(), alg, digits, step_secs)
            .map_err(|e| totp_error(&e))?;
        Ok(Self { inner })
    }

    #[getter]
    fn algorithm(&self) -> &'static str {
        match self.inner.algorithm {
            TotpAlgorithm::Sha1 => "sha1",
            TotpAlgorithm::Sha256 => "sha256",
            TotpAlgorithm::Sha512 => "sha512",
        }
    }

    #[getter]
    fn digits(&self) -> u8 {
        self.inner.digits
    }

    #[getter]
    fn step_secs(&self) -> u64 {
        self.inner.step_secs
    }

    /// Steps of clock skew accepted either side (default 1).
    #[getter]
    fn skew_steps(&self) -> u8 {
        self.inner.skew_steps
    }

    #[setter]
    fn set_skew_steps(&mut self, steps: u8) {
        self.inner.skew_steps = steps;
    }

    /// The secret in base32 without padding, for manual entry.
    fn secret_base32(&self) -> String {
        self.inner.secret_base32()
    }

    /// The `otpauth://` URI for a QR code.
    fn provisioning_uri(&self, issuer: &str, account: &str) -> String {
        self.inner.provisioning_uri(issuer, account)
    }

    /// The time step at wall-clock `now_ms`.
    fn step_at(&self, now_ms: u64) -> u64 {
        self.inner.step_at(UnixTime::from_millis(now_ms))
    }

    fn code_for_step(&self, step: u64) -> String {
        self.inner.code_for_step(step)
    }

    /// The code at wall-clock `now_ms`.
    fn code_at(&self, now_ms: u64) -> String {
        self.inner.code_at(UnixTime::from_millis(now_ms))
    }

    /// Checks `code` at `now_ms`; returns its step (store it and pass it as `last_used_step`
    /// next time). Raises `TotpRejected` or `TotpReplayed`.
    #[pyo3(signature = (code, now_ms, last_used_step = None))]
    fn verify(&self, code: &str, now_ms: u64, last_used_step: Option<u64>) -> PyResult<u64> {
        self.inner
            .verify(code, UnixTime::from_millis(now_ms), last_used_step)
            .map_err(|e| totp_error(&e))
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

// ---------------------------------------------------------------------------------------------
// Lockout

/// Lockout parameters; start from `web_cms()` or `keycloak()` and adjust. `growth` is
/// `exponential` or `linear`; `quick_failure` is `(window_ms, block_secs)` or `None`.
#[pyclass(module = "fleetwire.auth", eq, get_all, set_all, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct LockoutConfig {
    max_failures: u16,
    failures_per_block: u16,
    base_block_secs: u32,
    growth: String,
    max_block_secs: u32,
    jitter_percent: u8,
    failure_reset_secs: u32,
    quick_failure: Option<(u32, u32)>,
    permanent_after_blocks: Option<u16>,
    hard_limit: u16,
    max_keys: u32,
}

#[pymethods]
impl LockoutConfig {
    /// 5 failures block for 1 min, then 2, 4, 8 … up to 60 min; locked at 100.
    #[staticmethod]
    fn web_cms() -> Self {
        Self::from_core(&lo::LockoutConfig::web_cms())
    }

    /// Keycloak's brute-force detector defaults (plus the NIST hard limit).
    #[staticmethod]
    fn keycloak() -> Self {
        Self::from_core(&lo::LockoutConfig::keycloak())
    }

    /// Raises `ApiMisuse` if the parameters cannot be used.
    fn validate(&self) -> PyResult<()> {
        self.to_core()?.validate().map_err(|e| misuse(&e))
    }

    fn __repr__(&self) -> PyResult<String> {
        Ok(format!("{:?}", self.to_core()?))
    }
}

impl LockoutConfig {
    fn to_core(&self) -> PyResult<lo::LockoutConfig> {
        let growth = match self.growth.as_str() {
            "exponential" => lo::BlockGrowth::Exponential,
            "linear" => lo::BlockGrowth::Linear,
            other => {
                return Err(PyValueError::new_err(format!(
                    "growth must be 'exponential' or 'linear', got {other:?}"
                )));
            }
        };
        let mut c = lo::LockoutConfig::web_cms();
        c.max_failures = self.max_failures;
        c.failures_per_block = self.failures_per_block;
        c.base_block_secs = self.base_block_secs;
        c.growth = growth;
        c.max_block_secs = self.max_block_secs;
        c.jitter_percent = self.jitter_percent;
        c.failure_reset_secs = self.failure_reset_secs;
        c.quick_failure = self
            .quick_failure
            .map(|(window_ms, block_secs)| lo::QuickFailureCheck {
                window_ms,
                block_secs,
            });
        c.permanent_after_blocks = self.permanent_after_blocks;
        c.hard_limit = self.hard_limit;
        c.max_keys = self.max_keys;
        Ok(c)
    }

    fn from_core(c: &lo::LockoutConfig) -> Self {
        Self {
            max_failures: c.max_failures,
            failures_per_block: c.failures_per_block,
            base_block_secs: c.base_block_secs,
            growth: match c.growth {
                lo::BlockGrowth::Exponential => "exponential".into(),
                lo::BlockGrowth::Linear => "linear".into(),
                other => format!("{other:?}").to_lowercase(),
            },
            max_block_secs: c.max_block_secs,
            jitter_percent: c.jitter_percent,
            failure_reset_secs: c.failure_reset_secs,
            quick_failure: c.quick_failure.map(|q| (q.window_ms, q.block_secs)),
            permanent_after_blocks: c.permanent_after_blocks,
            hard_limit: c.hard_limit,
            max_keys: c.max_keys,
        }
    }
}

/// A reserved attempt; hand it back to `LockoutEngine.finish`.
#[pyclass(module = "fleetwire.auth", frozen)]
pub(crate) struct AttemptTicket {
    inner: lo::AttemptTicket,
}

#[pymethods]
impl AttemptTicket {
    /// Consecutive failures counted, including this reserved attempt.
    #[getter]
    fn failures(&self) -> u16 {
        self.inner.failures
    }

    fn __repr__(&self) -> String {
        format!("AttemptTicket(failures={})", self.inner.failures)
    }
}

/// The state of a key: open with `remaining` failures before a block, or locked `until_ms`
/// (`None` while locked: until cleared).
#[pyclass(module = "fleetwire.auth", frozen, eq, get_all)]
#[derive(Clone, PartialEq)]
pub(crate) struct LockStatus {
    locked: bool,
    remaining: Option<u16>,
    until_ms: Option<u64>,
}

#[pymethods]
impl LockStatus {
    fn __repr__(&self) -> String {
        format!(
            "LockStatus(locked={}, remaining={:?}, until_ms={:?})",
            self.locked, self.remaining, self.until_ms
        )
    }
}

/// Consecutive-failure lockout with growing blocks and reserve-before-verify. Keys are a
/// namespace, a subject (bytes) and optionally a 16-byte device id (its own lane).
#[pyclass(module = "fleetwire.auth")]
pub(crate) struct LockoutEngine {
    inner: lo::LockoutEngine,
}

fn key<'a>(
    namespace: &'a str,
    subject: &'a [u8],
    device: Option<&[u8]>,
) -> PyResult<LockoutKey<'a>> {
    Ok(match device {
        None => LockoutKey::untrusted(namespace, subject),
        Some(d) => LockoutKey::device(namespace, subject, lo::DeviceId(array("device", d)?)),
    })
}

#[pymethods]
impl LockoutEngine {
    /// `secret` (16 random bytes) keys the hash of lockout keys; keep it with the state.
    #[new]
    fn new(config: LockoutConfig, secret: &[u8]) -> PyResult<Self> {
        let inner = lo::LockoutEngine::new(config.to_core()?, array("secret", secret)?)
            .map_err(|e| misuse(&e))?;
        Ok(Self { inner })
    }

    #[getter]
    fn config(&self) -> LockoutConfig {
        LockoutConfig::from_core(self.inner.config())
    }

    /// Reserves an attempt (counted as a failure until finished with success); raises `Locked`.
    #[pyo3(signature = (namespace, subject, now_ms, device = None))]
    fn begin_attempt(
        &mut self,
        py: Python<'_>,
        namespace: &str,
        subject: &[u8],
        now_ms: u64,
        device: Option<&[u8]>,
    ) -> PyResult<AttemptTicket> {
        let k = key(namespace, subject, device)?;
        self.inner
            .begin_attempt(&k, UnixTime::from_millis(now_ms))
            .map(|inner| AttemptTicket { inner })
            .map_err(|l| locked_error(py, l))
    }

    /// Finishes a reserved attempt: `success=True` refunds it and ends the streak.
    fn finish(&mut self, ticket: &AttemptTicket, success: bool, now_ms: u64) {
        let outcome = if success {
            lo::Outcome::Success
        } else {
            lo::Outcome::Failure
        };
        self.inner
            .finish(ticket.inner, outcome, UnixTime::from_millis(now_ms));
    }

    /// The status of a key, without counting anything.
    #[pyo3(signature = (namespace, subject, now_ms, device = None))]
    fn status(
        &self,
        namespace: &str,
        subject: &[u8],
        now_ms: u64,
        device: Option<&[u8]>,
    ) -> PyResult<LockStatus> {
        let k = key(namespace, subject, device)?;
        Ok(match self.inner.status(&k, UnixTime::from_millis(now_ms)) {
            lo::LockStatus::Open { remaining } => LockStatus {
                locked: false,
                remaining: Some(remaining),
                until_ms: None,
            },
            lo::LockStatus::Locked(l) => LockStatus {
                locked: true,
                remaining: None,
                until_ms: l.until.map(UnixTime::as_millis),
            },
        })
    }

    /// Consecutive failures counted for a key at `now_ms`.
    #[pyo3(signature = (namespace, subject, now_ms, device = None))]
    fn failures(
        &self,
        namespace: &str,
        subject: &[u8],
        now_ms: u64,
        device: Option<&[u8]>,
    ) -> PyResult<u16> {
        let k = key(namespace, subject, device)?;
        Ok(self.inner.failures(&k, UnixTime::from_millis(now_ms)))
    }

    /// Forgets a key's failures and blocks (password reset, administrator unlock).
    #[pyo3(signature = (namespace, subject, device = None))]
    fn clear(&mut self, namespace: &str, subject: &[u8], device: Option<&[u8]>) -> PyResult<()> {
        let k = key(namespace, subject, device)?;
        self.inner.clear(&k);
        Ok(())
    }

    /// Drops every entry whose streak is forgotten by `now_ms`.
    fn purge(&mut self, now_ms: u64) {
        self.inner.purge(UnixTime::from_millis(now_ms));
    }

    /// Keys tracked now.
    #[getter]
    fn tracked_keys(&self) -> u64 {
        self.inner.stats().tracked_keys
    }
}
