def area(radius):
    """Return the area of a circle."""
    # pi is approximated here
    pi = 3.14159  # good enough
    return pi * radius ** 2


# print a few areas
for r in [1, 2, 3]:
    print(r, area(r))
