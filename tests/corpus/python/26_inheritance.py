class Animal:
    def __init__(self, name):
        self.name = name

    def speak(self):
        raise NotImplementedError


class Dog(Animal):
    def speak(self):
        return f"{self.name} says woof"


class Cat(Animal):
    def speak(self):
        return self.name + " says meow"


for pet in [Dog("Rex"), Cat("Tom")]:
    print(pet.speak())
