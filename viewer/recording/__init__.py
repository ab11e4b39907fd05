"""Recording streams to files and reading recordings back.

- mapping.py   shmview frames <-> Foxglove messages: topics, RawImage encodings, the stream
               description in channel metadata, overlays as ImageAnnotations (no I/O)
- sinks.py     where recorded frames go: an MCAP file (foxglove-sdk), a video (OpenCV), or
               one PNG/TIFF per frame
- recorder.py  following streams at full rate into a sink, counting what it could not keep
- walk.py      an MCAP file's records, front to back, every length bounded before it is
               believed (a chunk's claimed size against a cap, before decompressing)
- reading.py   a recording's streams and frames, from complete or cut-short MCAP files,
               every value taken from the file checked (RecordingError if it does not hold)
- info.py      what ``shmview info`` prints
- progress.py  progress on a terminal (rich), nothing otherwise
- command.py   ``shmview record``: readers, sink, recorder and progress put together
- cli.py       the ``record``, ``info`` and ``produce replay`` arguments and commands
               (replay itself is viewer/recording/replay.py)

Nothing here is imported by ``import viewer``: recording pulls in foxglove-sdk and mcap.
"""
