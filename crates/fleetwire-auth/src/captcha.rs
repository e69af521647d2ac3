//! captcha (todo)
