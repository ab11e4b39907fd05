"""shmview beyond one machine, through Eclipse Zenoh (``pip install shmview[net]``).

config.py opens sessions that talk only to the endpoints given; codec.py is the message
format; share.py publishes local streams; bridge.py mirrors remote ones into local
streams; remote.py lists what is shared. Importing this package does not import zenoh.
"""
