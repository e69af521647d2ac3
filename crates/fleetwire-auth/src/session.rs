//! session (todo)
