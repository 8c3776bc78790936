//! Link, tunnel, IP and transport decode down to a TCP segment or UDP datagram.
