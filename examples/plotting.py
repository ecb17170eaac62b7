"""What every example driver needs for its optional PNG: matplotlib without a display, or a
clear message when it is not installed (the drivers run without it), and one way to save."""
from __future__ import annotations


def pyplot(path):
    """matplotlib.pyplot on the Agg backend, or None after saying the plot `path` is skipped."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"\nmatplotlib is not installed: skipping the plot ({path.name}); "
              "`pip install matplotlib` (the `plot` extra) to get it.")
        return None
    return plt


def save(fig, path, dpi=120) -> bool:
    """Lay out, write and close `fig`; True (what the drivers' plot functions return)."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    print(f"\nplot written to {path}")
    return True
