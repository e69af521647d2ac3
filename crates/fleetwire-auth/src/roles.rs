//! roles (todo)
