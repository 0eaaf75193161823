"""The article's producer-consumer, ported to procq: replace
multiprocessing.Queue() with procq.Queue(); the rest is unchanged but for
a timeout on get(), so that a dead producer cannot hang the consumer.

Kept with the article's None sentinel on purpose, so that it reads line for
line like the article. procq's own way to end a stream is q.shutdown()
(Python 3.13's, across processes): every consumer's `for job in q:` loop
ends once the queue is shut down and drained, with no sentinel per
consumer; examples/spawn_start.py shows it.

    python examples/producer_consumer.py
"""

import multiprocessing
import time

import procq


def producer(q):
    for i in range(5):
        data = f"Job-{i}"
        print(f"[Prod] Generating: {data}", flush=True)
        q.put(data)
        time.sleep(0.1)
    # Send termination signal
    q.put(None)


def consumer(q):
    while True:
        data = q.get(timeout=30)
        if data is None:
            break
        print(f"[Cons] Processing: {data}", flush=True)


if __name__ == "__main__":
    q = procq.Queue()
    p1 = multiprocessing.Process(target=producer, args=(q,))
    p2 = multiprocessing.Process(target=consumer, args=(q,))
    p1.start()
    p2.start()
    p1.join()
    p2.join()
    print("exit codes:", p1.exitcode, p2.exitcode)
