"""The outbound path: fan-out, signing, retry policy, HTTP client and delivery."""
