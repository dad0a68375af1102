"""Where the package tier finds the tree and what `make dist` built."""
import pathlib

TOP = pathlib.Path(__file__).resolve().parents[2]
DIST = TOP / "dist"
