"""The pieces of MIME parsing; `doxa.gateway.parsing` assembles them into an `InboundMessage`.

loading: bytes -> `Message`, with fallbacks and header-block repair
charsets: bytes -> text under real-world charset labels
headers: header values, RFC 2047 encoded-words, message ids
addresses: From / Sender / Reply-To -> who sent it and who gets the answer
bodies: the MIME walk that collects text and HTML parts
attachments: every other part, with a safe file name
"""
