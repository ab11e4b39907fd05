"""shmview beyond one machine, through Eclipse Zenoh (``pip install shmview[net]``).

config.py opens sessions that talk only to the endpoints given, and secure.py lets through
only endpoints whose peers must prove they may read and publish (a private unix socket,
mutual TLS); tls.py makes the certificates for that; codec.py is the message
format; share.py publishes local streams; bridge.py mirrors remote ones into local
streams; remote.py lists what is shared. Importing this package does not import zenoh.
"""
