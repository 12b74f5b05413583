counter = 0

def increment(step=1):
    global counter
    counter += step
    return counter

increment()
increment(5)
print(counter)
