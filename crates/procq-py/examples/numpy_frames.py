"""Video-like frames (numpy arrays) from a producer to a consumer process.
Each array's data goes straight into the queue's shared memory and comes
back as an array over memory of its own: no copy through pickle (pickle
protocol 5, out-of-band buffers). The received arrays are writable.

    python examples/numpy_frames.py
"""

import multiprocessing as mp
import time

import numpy as np

import procq

FRAMES = 60
SHAPE = (720, 1280, 3)  # one 8-bit RGB frame: 2.8 MB


def camera(frames):
    frame = np.zeros(SHAPE, dtype=np.uint8)
    for i in range(FRAMES):
        frame[...] = i % 256  # put copies the data: the frame can be reused at once
        frames.put({"index": i, "time": time.time(), "pixels": frame})
    frames.shutdown()  # the end of the stream: the viewer stops after the last frame


def viewer(frames, report):
    got, checksum = 0, 0
    for item in frames:
        pixels = item["pixels"]
        assert pixels.shape == SHAPE and pixels.flags.writeable
        assert pixels[0, 0, 0] == item["index"] % 256
        pixels //= 2  # writable, in place
        checksum += int(pixels[-1, -1, -1])
        got += 1
    report.put((got, checksum))


if __name__ == "__main__":
    frames, report = procq.Queue(maxsize=4), procq.Queue()
    procs = [mp.Process(target=camera, args=(frames,)),
             mp.Process(target=viewer, args=(frames, report))]
    start = time.perf_counter()
    for p in procs:
        p.start()
    got, checksum = report.get(timeout=60)
    elapsed = time.perf_counter() - start
    for p in procs:
        p.join(30)
    mb = FRAMES * np.prod(SHAPE) / 1e6
    print(f"frames: {got}, checksum: {checksum}, {mb / elapsed:.0f} MB/s")
    assert got == FRAMES and checksum == sum((i % 256) // 2 for i in range(FRAMES))
