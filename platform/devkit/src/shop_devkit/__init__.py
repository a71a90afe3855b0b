"""The development kit: embedded servers for `shop dev`, the pytest plugins, a test SMTP server.

Only `shop dev` (`shop_platform.dev`) and the tests import it; the production image does not
install it.
"""
