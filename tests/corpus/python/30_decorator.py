import time
from functools import wraps


def timed(func):
    @wraps(func)
    def wrapper(*args, **kwargs):
        start = time.time()
        result = func(*args, **kwargs)
        print(f"{func.__name__} took {time.time() - start:.4f}s")
        return result
    return wrapper


@timed
def slow_add(a, b):
    time.sleep(0.01)
    return a + b


print(slow_add(2, 3))
