"""A user's plain numpy program: a bare 480x640x3 array in a SharedMemoryManager block,
no shmview header. Prints the block name, waits for a line on stdin, then cleans up."""

import sys
from multiprocessing.managers import SharedMemoryManager

import numpy as np

if __name__ == "__main__":
    with SharedMemoryManager() as smm:
        shm = smm.SharedMemory(480 * 640 * 3)
        frame = np.ndarray((480, 640, 3), np.uint8, buffer=shm.buf)
        frame[:] = 5
        print(shm.name, flush=True)
        sys.stdin.readline()
        del frame
        shm.close()
