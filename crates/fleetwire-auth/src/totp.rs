//! totp (todo)
