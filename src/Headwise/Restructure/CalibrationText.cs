namespace Headwise.Restructure;

/// <summary>The text conversions calibrate on when the user gives none: plain narrative and expository English, written for
/// this project, a few hundred tokens for the usual tokenizers. Calibrate on text like the model's own use when it matters.</summary>
public static class CalibrationText
{
    public const string Default =
        "Once upon a time, in a small town by the sea, there lived a girl named Mia and her old dog Pip. Every morning Mia walked "
        + "to the harbour to watch the fishing boats come in. The fishermen waved to her, and Pip barked at the gulls. One day a "
        + "storm came from the west. The sky turned grey, the wind pulled at the roofs, and the boats hurried home. Mia saw that "
        + "one small boat was still far out on the water. She ran to the lighthouse and told the keeper, who lit the great lamp. "
        + "The light swept across the waves, and the little boat turned toward it and found its way into the harbour. The next "
        + "day the whole town thanked Mia, and the keeper showed her how the lamp worked.\n\n"
        + "A library is a quiet place where people read, study and borrow books. Most libraries sort their books by subject, so "
        + "that books about the same topic stand together on the shelves. A catalogue lists every book with its title, its "
        + "author and the shelf where it can be found. Many libraries also lend music, films and computers, and some hold "
        + "classes for children and adults. Librarians help visitors find what they need and teach them how to judge whether "
        + "a source can be trusted.\n\n"
        + "To make bread, mix flour, water, salt and yeast into a dough. Knead it for ten minutes, until it is smooth, then let it "
        + "rise in a warm place for an hour. Shape the loaf, let it rise again, and bake it in a hot oven for about forty minutes. "
        + "The bread is done when it sounds hollow as you tap the bottom. Let it cool before you cut it.\n\n"
        + "Tom had three red apples and two green ones. He gave one red apple to his sister and ate a green one himself. Then he "
        + "counted again: two red apples and one green apple were left. \"That is three apples,\" said Tom, \"and three is enough "
        + "for a pie.\" So he and his sister baked an apple pie, and they shared it with their friends after school.";
}
