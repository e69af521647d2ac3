//! LAN sharing (todo)
