//! recovery (todo)
