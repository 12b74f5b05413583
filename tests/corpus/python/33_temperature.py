def c_to_f(c):
    return c * 9 / 5 + 32

for c in (-40, 0, 37, 100):
    f = c_to_f(c)
    label = "hot" if f > 90 else "cold" if f < 40 else "mild"
    print(c, f, label)
