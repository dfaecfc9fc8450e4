"""`python -m tests.substrate.kubelet`: run the test kubelet until SIGTERM."""

from tests.substrate.kubelet.app import main
from tests.substrate.kubelet.settings import parse_args

if __name__ == "__main__":
    main(parse_args())
