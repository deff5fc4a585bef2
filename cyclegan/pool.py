"""The image history buffer of Shrivastava et al., with the reference's replacement rule."""

from __future__ import annotations

import torch


class ImagePool:
    """Feeds the discriminator a mix of current and earlier fakes.

    Per image: until ``size`` images are stored, store and return it. Once full, with probability 0.5 return a
    stored image chosen uniformly and put the new one in its slot; otherwise return the new image. ``size`` 0
    passes images through. The coin flips come from the pool's own generator so a run is reproducible and a
    checkpoint can restore the exact sequence.
    """

    def __init__(self, size: int, generator: torch.Generator) -> None:
        self.size = size
        self.generator = generator
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.generator).item() > 0.5:
                slot = int(torch.randint(0, self.size, (), generator=self.generator).item())
                out.append(self.images[slot].clone())
                self.images[slot] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict:
        stored = torch.cat(self.images, 0).cpu() if self.images else torch.empty(0)
        return {"images": stored, "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        self.images = [img.unsqueeze(0).to(device) for img in state["images"]]
        self.generator.set_state(state["rng"])
