from dataclasses import dataclass, field
from typing import List


@dataclass
class Order:
    id: int
    items: List[str] = field(default_factory=list)
    total: float = 0.0

    def add(self, item: str, price: float) -> None:
        self.items.append(item)
        self.total += price


order = Order(1)
order.add("book", 12.5)
print(order)
