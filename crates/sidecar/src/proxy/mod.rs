//! Forwarding: listeners, upstream selection and HTTP/1.1 + HTTP/2 proxying (being written).
